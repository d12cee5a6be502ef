"""Plugin discovery through entry points, exactly as a third-party package would register:

    [project.entry-points."convc.backends"]
    mybackend = "mypkg.backend:backend"        # a Backend instance

    [project.entry-points."convc.passes"]
    my_pass = "mypkg.passes:my_pass"           # a function decorated with @convc_pass

or, from a script or notebook, `register_backend(backend)` (and `pass_manager.register_pass(fn)`).
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


_LOCAL_BACKENDS: dict[str, Any] = {}


def register_backend(backend: Any, name: str | None = None) -> Any:
    """Registers a Backend built in a script or notebook under `name` (default: its own name), as
    `register_pass` does for passes; it shadows an entry point of the same name. Returns `backend`."""
    check_backend(backend, name or getattr(backend, "name", "?"), "<script>")
    _LOCAL_BACKENDS[name or backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    _LOCAL_BACKENDS.pop(name, None)


def backend_names() -> list[str]:
    return sorted(set(discover(BACKENDS_GROUP)) | set(_LOCAL_BACKENDS))


def get_backend(name: str) -> Any:
    """The Backend registered under `name` (in this process, else by entry point); an unknown name lists
    the known ones."""
    if name in _LOCAL_BACKENDS:
        return _LOCAL_BACKENDS[name]
    return _load_backend(name)


@lru_cache(maxsize=None)
def _load_backend(name: str) -> Any:
    plugins = discover(BACKENDS_GROUP)
    if name not in plugins:
        raise OptionError(f"unknown backend {name!r}; known backends: {', '.join(backend_names()) or 'none'}")
    backend = plugins[name].load()
    if callable(backend) and not hasattr(backend, "compile"):
        backend = backend()
    check_backend(backend, name, plugins[name].package)
    return backend


def check_backend(backend: Any, name: str, package: str) -> None:
    """Raises a PluginError unless `backend` looks like a convc.backend.Backend."""
    if not hasattr(backend, "compile") or not hasattr(backend, "capabilities"):
        raise PluginError(f"backend plugin '{name}' from package '{package}' is not a Backend "
                          f"(it has no compile() and capabilities)")
