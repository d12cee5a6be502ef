"""What the pass manager does around every pass so that no pass, built-in or plugin, can change a result
unnoticed, hang the compile or reach the caller's network.

- Copies: the pipeline works on private, read-only copies of the parameter arrays (`ParamGuard.protect`).
  A pass that writes into one in place fails at the write, naming itself; a pass replaces arrays instead
  (`g.params[name] = new_array`). The caller's Network never shares an array with a pass.
- Fingerprints: the graph's structure (nodes, operands, attributes, types, outputs) and the identity of
  every parameter array before and after a pass. A pass that changed them is treated as changed (and
  checked) whatever it returned.
- Outputs: their number and types must survive a pass; an output that now names another node (other
  than through `replace_all_uses`) makes the numerics check run, comparing outputs by position.
- Time limit: `call_with_time_limit` runs a pass in a worker thread and stops waiting after the limit.

    guard = ParamGuard.protect(graph)
    before = fingerprint(graph)
    changed = call_with_time_limit(fn, (graph, ctx), 600.0, "pass 'x'")
    guard.check_untouched(graph, "pass 'x'")
"""
from __future__ import annotations

import contextvars
import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from convc.errors import PassError
from convc.ir import Graph


def fingerprint(graph: Graph) -> tuple[Any, ...]:
    """Structure and parameter identities: equal before and after a pass that changed nothing. Array
    contents are not read: they are read-only during the pipeline (ParamGuard), so identity suffices."""
    nodes = tuple((n.name, n.op, n.inputs, repr(sorted(n.attrs.items())), n.type) for n in graph.nodes())
    params = tuple(sorted((k, id(a), a.shape, str(a.dtype)) for k, a in graph.params.items()))
    return nodes, params, tuple(graph.outputs)


@dataclass
class ParamGuard:
    """The read-only copies the pipeline's graph holds instead of the caller's arrays."""

    copies: dict[int, str]  # id(copy) -> the parameter name it was made for

    @classmethod
    def protect(cls, graph: Graph) -> ParamGuard:
        copies: dict[int, str] = {}
        for name, array in list(graph.params.items()):
            copy = np.array(array, copy=True)
            copy.flags.writeable = False
            graph.params[name] = copy
            copies[id(copy)] = name
        return cls(copies)

    def check_untouched(self, graph: Graph, who: str) -> None:
        """A copy that became writable was unlocked to be edited in place: refuse it."""
        for name, array in graph.params.items():
            if id(array) in self.copies and array.flags.writeable:
                raise PassError(f"{who} made parameter '{name}' writable to edit it in place; a pass must "
                                f"replace arrays instead (g.params[name] = new_array), so the numerics check "
                                f"can compare with the values before it")

    def release(self, graph: Graph) -> None:
        """After the pipeline: the copies become ordinary writable arrays of the compiled graph."""
        for array in graph.params.values():
            if id(array) in self.copies and not array.flags.writeable:
                array.flags.writeable = True


def outputs_signature(graph: Graph) -> list[tuple[str, Any]]:
    return [(o, graph.node(o).type) for o in graph.outputs if o in graph]


def check_outputs(graph: Graph, before: list[tuple[str, Any]], who: str) -> bool:
    """Raises when the number or types of the outputs changed; True when an output now names a node the
    old one was not replaced by (replace_all_uses), so its values must be compared."""
    after = outputs_signature(graph)
    if len(graph.outputs) != len(before) or [t for _, t in after] != [t for _, t in before]:
        def show(sig: list[tuple[str, Any]]) -> str:
            return ", ".join(f"{name}: {t}" for name, t in sig) or "none"
        raise PassError(f"{who} changed the graph's outputs from [{show(before)}] to [{show(after)}]; a pass "
                        f"may rewrite how outputs are computed, never their number or types")
    return [graph.resolve(name) for name, _ in before] != list(graph.outputs)


class PassTimedOut(Exception):
    """Raised inside an abandoned pass thread to stop it (best effort)."""


def _stop(thread: threading.Thread) -> None:
    """Asks CPython to raise PassTimedOut in `thread` at its next Python instruction. A thread blocked in
    C code (a sleep, a long NumPy call) only stops when it returns to Python; until then it runs on,
    abandoned (a daemon thread: it never keeps the process alive)."""
    if thread.ident is None:
        return
    try:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(PassTimedOut))
    except (AttributeError, TypeError):  # not CPython: nothing more to do than abandon it
        pass


def call_with_time_limit(fn: Callable[..., Any], args: tuple[Any, ...], limit: float | None, who: str,
                         hint: str = "") -> Any:
    """fn(*args), or a PassError naming `who` once `limit` seconds pass (None or <= 0: no limit).

    The call runs in a worker thread while this one waits: a Python function cannot be killed safely
    from outside, so a pass that overruns is asked to stop (see _stop) and otherwise abandoned; the
    graph it was given is discarded with the failed compile. Its exceptions are re-raised here."""
    if limit is None or limit <= 0:
        return fn(*args)
    box: dict[str, Any] = {}
    # The caller's context variables (progress reporting, NumPy's error state) go with the pass.
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(fn, *args)
        except BaseException as e:  # noqa: BLE001 (handed to the waiting thread, which re-raises it)
            box["error"] = e

    worker = threading.Thread(target=target, name=f"convc {who}", daemon=True)
    worker.start()
    try:
        worker.join(limit)
    except BaseException:  # Ctrl-C while waiting: stop the pass too
        _stop(worker)
        raise
    if worker.is_alive():
        _stop(worker)
        raise PassError(f"{who} did not finish within {limit:g} s and was abandoned; {hint}".rstrip("; "))
    if "error" in box:
        raise box["error"]
    return box["value"]
