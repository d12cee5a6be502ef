"""Plugin discovery through entry points, exactly as a third-party package would register:

    [project.entry-points."convc.backends"]
    mybackend = "mypkg.backend:backend"        # a Backend instance

    [project.entry-points."convc.passes"]
    my_pass = "mypkg.passes:my_pass"           # a function decorated with @convc_pass

or, from a script or notebook, `register_backend(backend)` (and `pass_manager.register_pass(fn)`).

A plugin that fails to import cannot take convc down: `load_or_leave_out` records it as broken, the
first use warns once (what, which package, the error, how to disable or uninstall it) and everything
else keeps working.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from convc.errors import OptionError, PluginError, PluginWarning

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


_CLASHES: dict[tuple[str, str], str] = {}


def discover(group: str) -> dict[str, Plugin]:
    """Every entry point of `group`, by name. When two packages register one name the first is kept and
    the clash recorded (`clashes`): asking for that backend is then a PluginError naming both."""
    found: dict[str, Plugin] = {}
    for key in [k for k in _CLASHES if k[0] == group]:  # what is installed now decides
        del _CLASHES[key]
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else "?"
        first = found.setdefault(ep.name, Plugin(ep.name, ep.value, package, ep))
        if first.package != package:  # the same distribution seen twice (an egg-info beside it) is no clash
            _CLASHES[(group, ep.name)] = (f"'{ep.name}' in {group} is registered by both package "
                                          f"'{first.package}' ({first.value}) and package '{package}' "
                                          f"({ep.value}); uninstall one or rename its entry point")
    return found


def clashes(group: str) -> dict[str, str]:
    """Names of `group` that two packages register, with a message naming both (after `discover`)."""
    return {name: why for (g, name), why in _CLASHES.items() if g == group}


_LOCAL_BACKENDS: dict[str, Any] = {}


def register_backend(backend: Any, name: str | None = None) -> Any:
    """Registers a Backend built in a script or notebook under `name` (default: its own name), as
    `register_pass` does for passes; it shadows an entry point of the same name. Returns `backend`."""
    check_backend(backend, name or getattr(backend, "name", "?"), "<script>")
    _LOCAL_BACKENDS[name or backend.name] = backend
    return backend


def unregister_backend(name: str) -> None:
    _LOCAL_BACKENDS.pop(name, None)


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin left out because it failed to load: which, from which package, and why."""

    group: str
    name: str
    value: str
    package: str
    error: str

    def advice(self) -> str:
        how = (f"leave it out with --disable {self.name}" if self.group == PASSES_GROUP
               else "choose another --backend")
        return f"{how}, or uninstall it: pip uninstall {self.package}"

    def message(self) -> str:
        kind = "pass" if self.group == PASSES_GROUP else "backend"
        return (f"{kind} plugin '{self.name}' ({self.value}) from package '{self.package}' is left out: "
                f"{self.error}; {self.advice()}")


_BROKEN: dict[tuple[str, str], BrokenPlugin] = {}
_WARNED: set[tuple[str, str]] = set()


def load_or_leave_out(group: str, plugin: Plugin) -> Any | None:
    """The plugin's object, or None when it fails to load (it is then recorded in `broken`)."""
    try:
        loaded = plugin.load()
        _BROKEN.pop((group, plugin.name), None)
        return loaded
    except PluginError as e:
        cause = e.__cause__ or e
        leave_out(group, plugin, f"it failed to load ({type(cause).__name__}: {cause})")
        return None


def leave_out(group: str, plugin: Plugin, why: str) -> None:
    """Records `plugin` as broken (it loaded but is not what its group needs, or it failed to load)."""
    _BROKEN[(group, plugin.name)] = BrokenPlugin(group, plugin.name, plugin.value, plugin.package, why)


def broken(group: str) -> dict[str, BrokenPlugin]:
    """The plugins of `group` (still installed) that failed to load in this process, by name."""
    installed = discover(group)
    return {name: b for (g, name), b in _BROKEN.items() if g == group and name in installed}


def warn_broken(group: str, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """Warns once per process about each broken plugin of `group` not in `skip` (e.g. --disable)."""
    for name, b in broken(group).items():
        if name not in skip and (group, name) not in _WARNED:
            _WARNED.add((group, name))
            warnings.warn(PluginWarning(b.message()), stacklevel=2)


def backend_names() -> list[str]:
    return sorted(set(discover(BACKENDS_GROUP)) | set(_LOCAL_BACKENDS))


def get_backend(name: str) -> Any:
    """The Backend registered under `name` (in this process, else by entry point); an unknown name lists
    the known ones."""
    if name in _LOCAL_BACKENDS:
        return _LOCAL_BACKENDS[name]
    discover(BACKENDS_GROUP)
    if (BACKENDS_GROUP, name) in _CLASHES:
        raise PluginError(_CLASHES[(BACKENDS_GROUP, name)])
    return _load_backend(name)


def backend_origin(name: str) -> str:
    """The package that registers backend `name` ('convc' for the built-in ones, '<script>' for one from
    register_backend, '?' when unknown)."""
    if name in _LOCAL_BACKENDS:
        return "<script>"
    plugin = discover(BACKENDS_GROUP).get(name)
    return plugin.package if plugin is not None else "?"


@cache
def _load_backend(name: str) -> Any:
    plugins = discover(BACKENDS_GROUP)
    if name not in plugins:
        raise OptionError(f"unknown backend {name!r}; known backends: {', '.join(backend_names()) or 'none'}")
    backend = load_or_leave_out(BACKENDS_GROUP, plugins[name])
    if callable(backend) and not hasattr(backend, "compile"):
        backend = backend()
    if backend is not None and (not hasattr(backend, "compile") or not hasattr(backend, "capabilities")):
        leave_out(BACKENDS_GROUP, plugins[name], "it is not a Backend (it has no compile() and capabilities)")
        backend = None
    if backend is None:
        raise PluginError(broken(BACKENDS_GROUP)[name].message())
    return backend


def check_backend(backend: Any, name: str, package: str) -> None:
    """Raises a PluginError unless `backend` looks like a convc.backend.Backend."""
    if not hasattr(backend, "compile") or not hasattr(backend, "capabilities"):
        raise PluginError(f"backend plugin '{name}' from package '{package}' is not a Backend "
                          f"(it has no compile() and capabilities)")
