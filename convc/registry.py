"""Plugin discovery through entry points, exactly as a third-party package would register:

    [project.entry-points."convc.backends"]
    mybackend = "mypkg.backend:backend"        # a Backend instance

    [project.entry-points."convc.passes"]
    my_pass = "mypkg.passes:my_pass"           # a function decorated with @convc_pass
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from convc.errors import OptionError, PluginError

BACKENDS_GROUP = "convc.backends"
PASSES_GROUP = "convc.passes"


@dataclass(frozen=True)
class Plugin:
    """One entry point: its name, what it points at and the distribution that declares it."""

    name: str
    value: str
    package: str
    entry_point: EntryPoint

    def load(self) -> Any:
        try:
            return self.entry_point.load()
        except Exception as e:  # a plugin's import error must name the plugin, not crash convc
            raise PluginError(f"plugin '{self.name}' ({self.value}) from package '{self.package}' failed "
                              f"to load: {type(e).__name__}: {e}") from e


def discover(group: str) -> dict[str, Plugin]:
    """Every entry point of `group`, by name (the first distribution wins on a name clash)."""
    found: dict[str, Plugin] = {}
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else "?"
        found.setdefault(ep.name, Plugin(ep.name, ep.value, package, ep))
    return found


def backend_names() -> list[str]:
    return sorted(discover(BACKENDS_GROUP))


@lru_cache(maxsize=None)
def get_backend(name: str) -> Any:
    """The Backend registered under `name`; an unknown name lists the known ones."""
    plugins = discover(BACKENDS_GROUP)
    if name not in plugins:
        raise OptionError(f"unknown backend {name!r}; known backends: {', '.join(sorted(plugins)) or 'none'}")
    backend = plugins[name].load()
    if callable(backend) and not hasattr(backend, "compile"):
        backend = backend()
    if not hasattr(backend, "compile") or not hasattr(backend, "capabilities"):
        raise PluginError(f"backend plugin '{name}' from package '{plugins[name].package}' is not a Backend "
                          f"(it has no compile() and capabilities)")
    return backend
