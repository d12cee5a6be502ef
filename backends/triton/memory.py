"""The activation memory planner: one arena per compiled variant, buffers reused by liveness.
`plan_memory` runs four named stages:

  1. `_find_views`: identity, dropout and layout-free flattens are views of their input (no kernel, no
     memory); so is a flatten of a map with spatial size > 1 that only linear layers read: its features
     stay in channels-last (spatial, channel) order and those linears get weight columns permuted to match
     (`channels_last_features`), instead of a transpose copy into NCHW order;
  2. `_slice_concat_operands`: a channel concat's operands are written straight into their column slice
     of the concat's buffer (walked from the last concat back, so nested concats nest their slices); an
     operand that cannot be (already placed elsewhere, or read twice by one concat) is copied by the concat
     instead; `_unview_strided_flattens` then takes back the flatten views of maps left strided by a slice;
  3. `_live_buffers` and `_scratch_buffers`: every remaining buffer, and each node's scratch (im2col
     columns, Winograd transforms), gets a live interval [first write, last read]; `_place` puts them
     greedily, largest first, at the lowest offset that overlaps no buffer live at the same time;
  4. `_value_views` and `_scratch_views`: every value's View into the arena.

    plan = plan_memory(graph, "float16", "cuda", scratch={"conv2": [(4096, torch.float16)]})
    plan.views["conv1"]          # View into plan.arena
    plan.peak_bytes < plan.naive_bytes
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from convc.backends.triton.common import TORCH_DTYPES
from convc.backends.triton.geometry import channels, pixels
from convc.backends.triton.launch import View
from convc.errors import BackendError
from convc.ir import Graph, Node
from convc.types import ITEMSIZE

ALIGN = 256  # bytes: every buffer starts on a boundary that suits vector loads of any dtype
ALIAS_OPS = ("identity", "dropout")


def is_view_flatten(graph: Graph, node: Node) -> bool:
    """A flatten keeps the channels-last pixel matrix unless it folds channels into a spatial order."""
    src = graph.node(node.inputs[0]).type
    return node.attrs["start_dim"] >= 2 or src.rank <= 2 or src.numel == src.shape[0] * src.shape[1]


def _linear_readers_only(graph: Graph, value: str) -> list[str] | None:
    """`value` and the identity / dropout views of it, when every other reader is a linear layer taking it
    as its only activation and none of them is a graph output; None otherwise."""
    views = [value]
    for v in views:
        if v in graph.outputs:
            return None
        for user in graph.users(v):
            acts = graph.activation_inputs(user)
            if user.op in ALIAS_OPS:
                views.append(user.name)
            elif user.op != "linear" or tuple(acts) != (v,):
                return None
    return views


def channels_last_flatten(graph: Graph, node: Node) -> list[str] | None:
    """For a flatten that folds spatial positions into features and is read only by linear layers: the
    values (it and its views) whose features may stay in channels-last order. None for other nodes."""
    if node.op != "flatten" or is_view_flatten(graph, node):
        return None
    return _linear_readers_only(graph, node.name)


@dataclass
class _Buffer:
    key: str
    nbytes: int
    dtype: torch.dtype
    first: int
    last: int
    offset: int = -1


@dataclass
class MemoryPlan:
    arena: torch.Tensor
    views: dict[str, View]
    scratch: dict[str, list[View]]
    concat_copies: dict[str, list[int]]  # concat node -> operand positions it must copy
    aliases: dict[str, str]  # value -> the value whose view it shares
    # value -> (C, *spatial) of the map it flattens, for values holding features in (spatial, channel) order
    channels_last_features: dict[str, tuple[int, ...]]
    slices: dict[str, tuple[str, int]]  # value -> (concat value, first column)
    peak_bytes: int
    naive_bytes: int
    offsets: dict[str, int] = field(default_factory=dict)  # buffer key -> byte offset (for emit)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _place(buffers: list[_Buffer]) -> int:
    """Greedy by size: each buffer at the lowest offset free during its live interval; returns the total."""
    placed: list[_Buffer] = []
    total = 0
    for buf in sorted(buffers, key=lambda b: (-b.nbytes, b.first, b.key)):
        busy = sorted((p.offset, p.offset + p.nbytes) for p in placed
                      if p.first <= buf.last and buf.first <= p.last)
        offset = 0
        for lo, hi in busy:
            if offset + buf.nbytes <= lo:
                break
            offset = max(offset, _align(hi))
        buf.offset = offset
        placed.append(buf)
        total = max(total, offset + buf.nbytes)
    return _align(total)


@dataclass
class _Sharing:
    """Which values share storage (stages 1 and 2): views of another value and concat column slices."""

    aliases: dict[str, str] = field(default_factory=dict)  # value -> the value whose view it is
    nhwc_flattens: dict[str, list[str]] = field(default_factory=dict)  # channels-last flatten -> it and views
    slices: dict[str, tuple[str, int]] = field(default_factory=dict)  # value -> (concat value, first column)
    copies: dict[str, list[int]] = field(default_factory=dict)  # concat -> operand positions it copies

    def root(self, v: str) -> str:
        """The value whose memory `v` views (itself if it is no view)."""
        while v in self.aliases:
            v = self.aliases[v]
        return v

    def storage_root(self, v: str) -> str:
        """The value that owns the buffer `v` lives in, through views and concat slices."""
        v = self.root(v)
        while v in self.slices:
            v = self.root(self.slices[v][0])
        return v


def _find_views(graph: Graph, order: list[Node], sharing: _Sharing) -> None:
    """Stage 1: identity, dropout and layout-free flattens view their input; so does a channels-last
    flatten that only linear layers read."""
    for node in order:
        if node.op in ALIAS_OPS or (node.op == "flatten" and is_view_flatten(graph, node)):
            sharing.aliases[node.name] = node.inputs[0]
        elif (views := channels_last_flatten(graph, node)) is not None:
            sharing.aliases[node.name] = node.inputs[0]
            sharing.nhwc_flattens[node.name] = views


def _slice_concat_operands(graph: Graph, order: list[Node], sharing: _Sharing) -> None:
    """Stage 2: each channel concat's operands go into their column slice of its buffer, from the last
    concat back so nested concats nest; an operand placed elsewhere already, or read twice, is copied."""
    for node in reversed(order):
        if node.op != "concat":
            continue
        operands = graph.activation_inputs(node)
        if node.attrs["axis"] != 1:
            sharing.copies[node.name] = list(range(len(operands)))
            continue
        start, seen, copied = 0, set(), []
        for i, operand in enumerate(operands):
            r = sharing.root(operand)
            if r in sharing.slices or r in seen:
                copied.append(i)
            else:
                sharing.slices[r] = (node.name, start)
                seen.add(r)
            start += channels(graph.node(operand).type)
        sharing.copies[node.name] = copied


def _unview_strided_flattens(graph: Graph, sharing: _Sharing) -> dict[str, tuple[int, ...]]:
    """A map written into a concat's column slice has rows ld > C apart: its features are not contiguous,
    so flattening it takes the copy after all. Returns the channels-last feature shapes that remain."""
    for name in list(sharing.nhwc_flattens):
        src = graph.node(name).inputs[0]
        if sharing.storage_root(src) != sharing.root(src):
            del sharing.aliases[name], sharing.nhwc_flattens[name]
    return {v: graph.node(graph.node(f).inputs[0]).type.shape[1:]
            for f, views in sharing.nhwc_flattens.items() for v in views}


def _live_buffers(graph: Graph, order: list[Node], index: dict[str, int], end: int, sharing: _Sharing,
                  dtype: str) -> dict[str, _Buffer]:
    """Stage 3a: one buffer per storage root, live over the union of its values' [first write, last read]
    (a graph output is read at `end`)."""
    item = ITEMSIZE[dtype]
    buffers: dict[str, _Buffer] = {}
    for node in order:
        key = sharing.storage_root(node.name)
        if key not in buffers:
            t = graph.node(key).type
            buffers[key] = _Buffer(key, pixels(t) * channels(t) * item, TORCH_DTYPES[dtype], end, 0)
        buf = buffers[key]
        buf.first = min(buf.first, index[node.name])
        reads = [index[u.name] for u in graph.users(node.name)]
        reads += [end] if node.name in graph.outputs else []
        buf.last = max(buf.last, index[node.name], *reads)
    return buffers


def _scratch_buffers(scratch: dict[str, list[tuple[int, torch.dtype]]],
                     index: dict[str, int]) -> dict[str, list[_Buffer]]:
    """Stage 3b: each node's scratch requests, live only while the node runs."""
    return {name: [_Buffer(f"{name}#scratch{j}", n * (torch.finfo(dt).bits // 8), dt, index[name],
                           index[name]) for j, (n, dt) in enumerate(requests)]
            for name, requests in scratch.items()}


def _typed(arena: torch.Tensor, buf: _Buffer) -> torch.Tensor:
    return arena[buf.offset: buf.offset + buf.nbytes].view(buf.dtype)


def _value_views(graph: Graph, order: list[Node], sharing: _Sharing, buffers: dict[str, _Buffer],
                 arena: torch.Tensor) -> dict[str, View]:
    """Stage 4: every value's View into the placed arena, through its views and slices."""
    views: dict[str, View] = {}

    def view_of(v: str) -> View:
        if v in views:
            return views[v]
        t = graph.node(v).type
        rows, cols = pixels(t), channels(t)
        if v in sharing.nhwc_flattens:  # the contiguous [N * positions, C] matrix read as [N, positions * C]
            src = view_of(sharing.aliases[v])
            if src.ld != src.cols or src.rows * src.cols != rows * cols:
                raise BackendError(f"internal: flatten '{v}' cannot view a {src.rows}x{src.cols} map "
                                   f"with rows {src.ld} apart")
            view = View(src.storage, src.offset, rows, cols, cols)
        elif v in sharing.aliases:
            src = view_of(sharing.aliases[v])
            view = View(src.storage, src.offset, rows, cols, src.ld)
        elif v in sharing.slices:
            concat, start = sharing.slices[v]
            view = view_of(concat).column_slice(start, cols)
        else:
            view = View(_typed(arena, buffers[v]), 0, rows, cols, cols)
        views[v] = view
        return view

    for node in order:
        view_of(node.name)
    return views


def _scratch_views(scratch_bufs: dict[str, list[_Buffer]], arena: torch.Tensor) -> dict[str, list[View]]:
    def flat(b: _Buffer) -> View:
        n = b.nbytes // (torch.finfo(b.dtype).bits // 8)
        return View(_typed(arena, b), 0, 1, n, n)
    return {name: [flat(b) for b in bs] for name, bs in scratch_bufs.items()}


def plan_memory(graph: Graph, dtype: str, device: str,
                scratch: dict[str, list[tuple[int, torch.dtype]]] | None = None) -> MemoryPlan:
    """The stages of the module docstring: views, concat slices, live intervals, placement, views."""
    order = [n for n in graph.nodes() if n.op != "param"]
    index = {n.name: (0 if n.op == "input" else i + 1) for i, n in enumerate(order)}
    end = len(order) + 1
    sharing = _Sharing()
    _find_views(graph, order, sharing)
    _slice_concat_operands(graph, order, sharing)
    features = _unview_strided_flattens(graph, sharing)
    buffers = _live_buffers(graph, order, index, end, sharing, dtype)
    scratch_bufs = _scratch_buffers(scratch or {}, index)
    all_bufs = list(buffers.values()) + [b for bs in scratch_bufs.values() for b in bs]
    total = _place(all_bufs)
    arena = torch.empty(max(total, ALIGN), dtype=torch.uint8, device=device)
    naive = sum(node.type.numel for node in order) * ITEMSIZE[dtype]
    views = _value_views(graph, order, sharing, buffers, arena)
    return MemoryPlan(arena, views, _scratch_views(scratch_bufs, arena), sharing.copies, sharing.aliases,
                      features, sharing.slices, total, naive, {b.key: b.offset for b in all_bufs})
