"""Passes and the pass manager.

    @convc_pass("fold_bn", requires=(), runs_after=("eliminate_dropout",), opt_level=1)
    def fold_bn(g: Graph, ctx: PassContext) -> bool:
        \"\"\"conv -> batch_norm  ==>  conv with rescaled weight and bias.\"\"\"

A pass is a plain function `(graph, ctx) -> changed`. The decorator only attaches a `PassInfo` and
returns the function unchanged (as pluggy does). Built-in passes register through the `convc.passes`
entry-point group exactly like a third-party package's; `register_pass` adds one from a script.
"""
from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convc.errors import ConvcError, GraphError, OptionError, PassError, PluginError, PluginWarning
from convc.ir import Graph
from convc.pass_guard import ParamGuard, call_with_time_limit, check_outputs, fingerprint, outputs_signature
from convc.registry import PASSES_GROUP, broken, clashes, discover, leave_out, load_or_leave_out, warn_broken

PassFn = Callable[[Graph, "PassContext"], bool]
# Seconds one pass may run before the compile stops with a PassError naming it (docs/numerics.md).
DEFAULT_PASS_TIMEOUT = 600.0


@dataclass(frozen=True)
class PassInfo:
    name: str
    description: str
    requires: tuple[str, ...] = ()
    runs_after: tuple[str, ...] = ()
    opt_level: int = 2  # lowest -O level whose default pipeline includes it; 99: never by default
    backends: tuple[str, ...] | None = None  # None: applies to every backend
    origin: str = "?"  # the distribution (package) that provides it
    runs_before: tuple[str, ...] = ()  # passes that must come after it when both are in the pipeline


def convc_pass(name: str, *, description: str | None = None, requires: Sequence[str] = (),
               runs_after: Sequence[str] = (), runs_before: Sequence[str] = (), opt_level: int = 2,
               backends: Sequence[str] | None = None) -> Callable[[PassFn], PassFn]:
    """Attaches pass metadata to `fn` and returns `fn` itself. `runs_after` / `runs_before` order it
    against passes that are in the same pipeline (a plugin can go before a built-in pass)."""
    def attach(fn: PassFn) -> PassFn:
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        fn.__convc_pass__ = PassInfo(  # type: ignore[attr-defined]
            name, description or (doc[0] if doc else name), tuple(requires), tuple(runs_after),
            opt_level, tuple(backends) if backends is not None else None, runs_before=tuple(runs_before))
        return fn
    return attach


_LOCAL: dict[str, PassFn] = {}


def register_pass(fn: PassFn, **meta: Any) -> PassFn:
    """Registers a pass defined in a script or notebook; `meta` as for `convc_pass` if undecorated."""
    if not hasattr(fn, "__convc_pass__"):
        convc_pass(meta.pop("name", fn.__name__), **meta)(fn)
    info = fn.__convc_pass__  # type: ignore[attr-defined]
    _LOCAL[info.name] = fn
    return fn


def unregister_pass(name: str) -> None:
    _LOCAL.pop(name, None)


@dataclass(frozen=True)
class RegisteredPass:
    fn: PassFn
    info: PassInfo

    @property
    def name(self) -> str:
        return self.info.name


def available_passes() -> dict[str, RegisteredPass]:
    """Every pass: entry points of `convc.passes` (loaded), then ones registered in this process.
    A plugin that fails to load or is no pass is left out (registry.broken lists it)."""
    found: dict[str, RegisteredPass] = {}
    for name, plugin in discover(PASSES_GROUP).items():
        fn = load_or_leave_out(PASSES_GROUP, plugin)
        if fn is None:
            continue
        info = getattr(fn, "__convc_pass__", None)
        if not isinstance(info, PassInfo):
            leave_out(PASSES_GROUP, plugin, "it is not a function decorated with @convc_pass")
            continue
        if _taken(found, info.name, plugin):
            continue
        found[info.name] = RegisteredPass(fn, _with_origin(info, plugin.package))
    for why in clashes(PASSES_GROUP).values():  # the first package's pass is used: say so
        warnings.warn(PluginWarning(why), stacklevel=2)
    for name, fn in _LOCAL.items():
        _refuse_clash(found, name, "<script>")
        found[name] = RegisteredPass(fn, _with_origin(fn.__convc_pass__, "<script>"))  # type: ignore
    return found


def _taken(found: dict[str, RegisteredPass], name: str, plugin: Any) -> bool:
    """A plugin pass whose name another package's pass has is left out (and warned about): which one ran
    would otherwise depend on install order."""
    other = found.get(name)
    if other is None or other.info.origin == plugin.package:
        return False
    leave_out(PASSES_GROUP, plugin, f"its pass name '{name}' is taken by a pass from package "
                                    f"'{other.info.origin}'; rename the pass")
    return True


def _refuse_clash(found: dict[str, RegisteredPass], name: str, origin: str) -> None:
    """A pass registered in this process may not take the name of an installed one."""
    other = found.get(name)
    if other is not None and other.info.origin != origin:
        raise PluginError(f"pass '{name}' from package '{origin}' has the name of a pass from package "
                          f"'{other.info.origin}'; a plugin must choose a name of its own")


def _with_origin(info: PassInfo, origin: str) -> PassInfo:
    from dataclasses import replace

    return replace(info, origin=origin)


@dataclass
class PassContext:
    """What a pass may consult: the target, the dtype, the user's options, and where to log."""

    backend: Any = None  # the target convc.backend.Backend (capabilities, compile)
    dtype: str = "float32"
    opt_level: int = 2
    check_numerics: bool | str = "plugins"  # True: after every pass; "plugins": third-party ones only
    device: str = "cpu"
    seed: int = 0
    # Pass-specific settings, by pass name: options["choose_conv_algo"] = {"algo": {...}, "plan": "p.json"}
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)  # what passes publish (e.g. results["plan"])

    def options_of(self, pass_name: str, accepted: Sequence[str]) -> dict[str, Any]:
        """The settings given for `pass_name`; an unknown setting raises an OptionError naming the pass and
        what it accepts."""
        given = dict(self.options.get(pass_name) or {})
        unknown = sorted(set(given) - set(accepted))
        if unknown:
            raise OptionError(f"pass '{pass_name}' has no option(s) {', '.join(unknown)}; it accepts "
                              f"{', '.join(accepted) or 'none'}")
        return given

    @property
    def capabilities(self) -> Any:
        return getattr(self.backend, "capabilities", None)

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", "numpy")


@dataclass(frozen=True)
class PassRecord:
    """What one pass did: timing, node counts, whether it changed the graph, its numeric error."""

    name: str
    origin: str
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool
    error: float | None = None


def resolve_pipeline(opt_level: int = 2, passes: Sequence[str] | None = None,
                     disable: Iterable[str] = (), backend: str | None = None,
                     registry: dict[str, RegisteredPass] | None = None) -> list[RegisteredPass]:
    """The ordered pipeline. `passes` replaces the default list; entries '+name' add to it.
    Requirements and runs-after constraints decide the order (ties keep the listed order)."""
    if opt_level not in (0, 1, 2, 3):
        raise OptionError(f"opt level {opt_level} is not one of 0, 1, 2, 3")
    reg = registry if registry is not None else available_passes()
    disable = list(disable)
    out_of_order = broken(PASSES_GROUP)
    # Disabled ones are not mentioned; named ones raise below: the others get a warning (once).
    warn_broken(PASSES_GROUP, skip={*disable, *(p.lstrip("+") for p in passes or ())})
    default = sorted((p for p in reg.values() if p.info.opt_level <= opt_level and opt_level > 0
                      and (p.info.backends is None or backend is None or backend in p.info.backends)),
                     key=lambda p: (p.info.opt_level, p.name))
    names = [p.name for p in default]
    if passes:
        replace = [p for p in passes if not p.startswith("+")]
        if replace:
            names = []
        names += [p.lstrip("+") for p in passes]
    both = sorted({p.lstrip("+") for p in passes or ()} & set(disable))
    if both:
        raise OptionError(f"pass(es) {', '.join(both)} named in both --passes and --disable; keep each in one")
    for n in disable:
        if n not in reg and n not in out_of_order:
            raise OptionError(f"--disable: unknown pass {n!r}; known passes: {', '.join(sorted(reg))}")
    names = [n for n in dict.fromkeys(names) if n not in set(disable)]
    for n in names:
        if n not in reg and n in out_of_order:
            raise PluginError(out_of_order[n].message())
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise OptionError(f"unknown pass(es) {', '.join(unknown)}; known passes: {', '.join(sorted(reg))}")
    chosen = {n: reg[n] for n in names}
    for p in chosen.values():
        missing = [r for r in p.info.requires if r not in chosen]
        if missing:
            raise PassError(f"pass '{p.name}' requires {', '.join(missing)}, which the pipeline does not "
                            f"include ({', '.join(names) or 'empty'})")
    return _order(chosen, names)


def _order(chosen: dict[str, RegisteredPass], names: list[str]) -> list[RegisteredPass]:
    before: dict[str, set[str]] = {n: set() for n in names}
    for p in chosen.values():
        for dep in p.info.requires + p.info.runs_after:
            if dep in chosen:
                before[p.name].add(dep)
        for later in p.info.runs_before:
            if later in chosen:
                before[later].add(p.name)
    ordered: list[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if before[n] <= set(ordered)]
        if not ready:
            raise PassError(f"pass ordering has a cycle among: {', '.join(pending)}")
        ordered.append(ready[0])
        pending.remove(ready[0])
    return [chosen[n] for n in ordered]


def _plugin_error(p: RegisteredPass, e: Exception) -> PluginError:
    return PluginError(f"pass '{p.name}' from package '{p.info.origin}' raised {type(e).__name__}: {e} "
                       f"(disable it with --disable {p.name})")


class PassManager:
    """Runs a pipeline, verifying after every pass; optionally checks numerics, times, dumps IR."""

    def __init__(self, pipeline: list[RegisteredPass], *, timing: bool = False,
                 dump_ir: str | Path | None = None, pass_timeout: float | None = DEFAULT_PASS_TIMEOUT) -> None:
        self.pipeline = pipeline
        self.timing = timing
        self.dump_ir = Path(dump_ir) if dump_ir else None
        self.pass_timeout = pass_timeout  # seconds per pass; None or 0: no limit
        self.records: list[PassRecord] = []

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        """Runs every pass on `graph` (whose parameter arrays it replaces by private copies: see
        convc/pass_guard.py), verifying after each and checking numerics as `ctx.check_numerics` asks."""
        from convc.numerics_check import NumericsChecker

        graph.verify()
        guard = ParamGuard.protect(graph)
        checker = NumericsChecker(graph, ctx)  # traces nothing until a pass needs checking
        self._dump(graph, 0, "input")
        done: list[str] = []
        for i, p in enumerate(self.pipeline, 1):
            who = f"pass '{p.name}' (package '{p.info.origin}')"
            before, shape_before, outputs_before = len(graph), fingerprint(graph), outputs_signature(graph)
            t0 = time.perf_counter()
            try:
                hint = f"raise the limit with pass_timeout= / --pass-timeout SECONDS (0: none) or leave it " \
                       f"out with --disable {p.name}"
                changed = bool(call_with_time_limit(p.fn, (graph, ctx), self.pass_timeout, who, hint))
            except ConvcError:
                raise
            except ValueError as e:
                if "read-only" not in str(e):
                    raise _plugin_error(p, e) from e
                raise PluginError(f"{who} wrote into a parameter array in place ({e}); a pass must replace "
                                  f"arrays instead: g.params[name] = new_array") from e
            except Exception as e:
                raise _plugin_error(p, e) from e
            seconds = time.perf_counter() - t0
            try:
                graph.verify()
            except GraphError as e:
                raise PassError(f"{who} left a broken graph: {e}; "
                                f"passes run before it: {', '.join(done) or 'none'}") from None
            guard.check_untouched(graph, who)
            repointed = check_outputs(graph, outputs_before, who)
            if not changed and fingerprint(graph) != shape_before:
                ctx.log.append(f"{p.name}: returned False but changed the graph; checked as changed")
                changed = True
            error = None
            wanted = ctx.check_numerics is True or (ctx.check_numerics and p.info.origin != "convc")
            if changed and (wanted or repointed):
                error = checker.check(graph, p, done)
            self.records.append(PassRecord(p.name, p.info.origin, seconds, before, len(graph), changed, error))
            done.append(p.name)
            self._dump(graph, i, p.name)
        guard.release(graph)
        return graph

    def _dump(self, graph: Graph, index: int, name: str) -> None:
        if self.dump_ir is None:
            return
        from convc.printer import to_dot, to_text
        from convc.serialize import write_output

        stem = self.dump_ir / f"{index:02d}_{name}"
        write_output(stem.with_suffix(".txt"), to_text(graph).encode(), "dump_ir")
        write_output(stem.with_suffix(".dot"), to_dot(graph).encode(), "dump_ir")
