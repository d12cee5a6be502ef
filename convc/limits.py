"""The memory limit: sizes no machine here could hold are refused before anything is allocated.

    check_bytes(TensorType((10**6, 10**6, 3, 3)).nbytes, "param 'w'")   # SizeLimitError: 36.0 TB ...
    peak_lower_bound(graph, "float32")    # (bytes, node): the least memory one node's step needs

The limit is CONVC_MEMORY_LIMIT (bytes, or a number with K/M/G/T, e.g. `512G`) when set, otherwise the
machine's physical memory (1 TiB where it cannot be read). It bounds what must be true of any run: one
tensor, and one node's operands + result + all parameters at once. Real runs need more (workspaces,
the backend's own buffers), so passing the check does not promise a run fits; failing it proves it cannot.
"""
from __future__ import annotations

import os

from convc.errors import OptionError, SizeLimitError
from convc.types import ITEMSIZE, TensorType

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
DEFAULT_LIMIT = 1 << 40


def parse_size(text: str) -> int:
    """'512G' -> 549755813888; plain digits are bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise OptionError(f"CONVC_MEMORY_LIMIT={text!r}: expected bytes, or a number with K, M, G or T "
                          f"(e.g. 512G)") from None
    if not value > 0:
        raise OptionError(f"CONVC_MEMORY_LIMIT={text!r}: must be positive")
    return int(value * _UNITS[unit])


def memory_limit() -> int:
    """Bytes any one run may need at most (see the module docstring)."""
    env = os.environ.get("CONVC_MEMORY_LIMIT")
    if env:
        return parse_size(env)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_LIMIT


def human_bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _refuse(nbytes: int, what: str, limit: int) -> SizeLimitError:
    return SizeLimitError(f"{what} would need {human_bytes(nbytes)}, more than the memory limit "
                          f"{human_bytes(limit)}; use smaller sizes, or raise CONVC_MEMORY_LIMIT "
                          f"(docs/reliability.md)")


def check_bytes(nbytes: int, what: str) -> None:
    """Raises a SizeLimitError naming `what` when `nbytes` exceeds the memory limit."""
    limit = memory_limit()
    if nbytes > limit:
        raise _refuse(nbytes, what, limit)


def check_shape(shape: tuple[int, ...], dtype: str, what: str) -> None:
    """check_bytes for a tensor of `shape` and `dtype` (any dtype name; unknown ones count 8 bytes)."""
    n = ITEMSIZE.get(dtype, 8)
    for d in shape:
        n *= max(int(d), 0)
    check_bytes(n, what)


def peak_lower_bound(graph: object, dtype: str) -> tuple[int, str]:
    """(bytes, node name): all parameters plus the largest one-node step (its operands and its result),
    at `dtype`: no schedule of the graph can run in less."""
    from convc.ir import Graph

    assert isinstance(graph, Graph)
    size = ITEMSIZE.get(dtype, 8)
    params = sum(TensorType(tuple(a.shape), dtype).numel for a in graph.params.values()) * size
    worst, where = 0, ""
    for node in graph.nodes():
        if node.op == "param":
            continue
        acts = [graph.node(i).type for i in node.inputs if graph.node(i).op != "param"]
        step = (node.type.numel + sum(t.numel for t in acts)) * size
        if step > worst:
            worst, where = step, node.name
    return params + worst, where


def check_graph(graph: object, dtype: str) -> None:
    """Refuses a graph whose peak_lower_bound exceeds the memory limit, naming its largest step."""
    need, where = peak_lower_bound(graph, dtype)
    limit = memory_limit()
    if need > limit:
        name = getattr(graph, "name", "?")
        raise _refuse(need, f"graph '{name}' (its parameters plus node '{where}' with its operands, "
                            f"at {dtype})", limit)
