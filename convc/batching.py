"""One compile, any batch: a graph re-typed for another batch size, batch buckets, and the model that
runs every batch size up to a maximum by padding to the next bucket.

    g8 = rebatch(graph, 8)                 # every activation's batch axis becomes 8, types inferred again
    batch_buckets(64)                      # (1, 2, 4, 8, 16, 32, 64)
    model = convc.compile(net, max_batch=64)
    model.run(x_of_batch_5)                # runs the bucket of 8 on x padded with zeros; returns 5 rows

A graph can be batched only when its examples are independent: every activation keeps the batch on
axis 0 and no node reduces or joins across it (softmax over axis 0, for one).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from convc.backend import CompiledModel
from convc.errors import BackendError, GraphError, OptionError
from convc.ir import Graph
from convc.ops import InvalidNode, schema_of
from convc.types import TensorType

GRAPH_BOUNDARY = ("input", "param")


def batch_buckets(max_batch: int, min_batch: int = 1) -> tuple[int, ...]:
    """The powers of two from `min_batch` up to `max_batch`, with both ends included.

    >>> batch_buckets(48, 4)
    (4, 8, 16, 32, 48)"""
    for name, value in (("max_batch", max_batch), ("min_batch", min_batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise OptionError(f"{name}={value!r} must be a positive integer")
    if min_batch > max_batch:
        raise OptionError(f"batch range {min_batch}..{max_batch} is empty: the minimum exceeds the maximum")
    buckets = {int(min_batch), int(max_batch)}
    size = 1
    while size < max_batch:
        if size > min_batch:
            buckets.add(size)
        size *= 2
    return tuple(sorted(buckets))


def parse_batch_range(text: str) -> tuple[int, int]:
    """'8' -> (8, 8); '1..64' -> (1, 64): the CLI's --batch."""
    low, sep, high = str(text).partition("..")
    try:
        lo, hi = (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise OptionError(f"--batch {text!r}: expected a batch size like 8 or a range like 1..64") from None
    if lo <= 0 or hi < lo:
        raise OptionError(f"--batch {text!r}: expected positive sizes with the smaller first, like 1..64")
    return lo, hi


def with_input_shapes(graph: Graph, shapes: Iterable[tuple[int, ...]]) -> Graph:
    """A copy of `graph` whose inputs have `shapes`, every other node's type inferred again (parameters
    are shared). A node that cannot take the new shapes raises a GraphError naming it."""
    g = graph.copy()
    for node, shape in zip(g.inputs, shapes):
        g.replace_node(node.replace(attrs={**node.attrs, "shape": tuple(shape)},
                                    type=TensorType(tuple(shape), node.type.dtype)))
    for node in g.nodes():
        if node.op in GRAPH_BOUNDARY:
            continue
        acts = g.activation_inputs(node)
        try:
            t = schema_of(node.op).infer([g.node(a).type for a in acts], node.attrs)
        except InvalidNode as e:
            raise GraphError(f"graph '{graph.name}': node '{node.name}' ({node.op}) cannot take input "
                             f"shapes {[tuple(s) for s in shapes]}: {e}") from None
        g.replace_node(node.replace(type=TensorType(t.shape, node.type.dtype)))
    return g


def batch_size(graph: Graph) -> int:
    """The batch size the graph's inputs declare (axis 0 of the first input)."""
    return graph.inputs[0].type.shape[0]


def rebatch(graph: Graph, batch: int) -> Graph:
    """`graph` for batch size `batch`, after checking that its examples are independent."""
    check_batchable(graph)
    if batch == batch_size(graph):
        return graph.copy()
    g = with_input_shapes(graph, [(batch,) + n.type.shape[1:] for n in graph.inputs])
    check_batch_axis(g, batch)
    return g


def check_batchable(graph: Graph) -> None:
    """Raises a GraphError naming the first node that mixes examples of a batch."""
    batches = {n.type.shape[0] if n.type.shape else None for n in graph.inputs}
    if len(batches) != 1 or None in batches:
        listed = ", ".join(f"{n.name} {n.type}" for n in graph.inputs)
        raise GraphError(f"graph '{graph.name}' cannot change its batch size: its inputs ({listed}) do not "
                         f"share a batch axis 0")
    for node in graph.inputs:
        if "fixed_batch" in node.attrs:
            raise GraphError(f"graph '{graph.name}' cannot change its batch size: input '{node.name}' says "
                             f"{node.attrs['fixed_batch']}")
    check_batch_axis(graph, batch_size(graph))


def check_batch_axis(graph: Graph, batch: int) -> None:
    for node in graph.nodes():
        if node.op in GRAPH_BOUNDARY:
            continue
        shape = node.type.shape
        if not shape or shape[0] != batch or node.attrs.get("axis") == 0:
            raise GraphError(f"graph '{graph.name}' cannot change its batch size: node '{node.name}' "
                             f"({node.op} : {node.type}) does not keep the {batch} examples apart on axis 0")


def bucket_for(batch: int, buckets: tuple[int, ...], where: str) -> int:
    """The smallest bucket that holds `batch` examples; a larger batch is a BackendError."""
    for b in buckets:
        if b >= batch:
            return b
    raise BackendError(f"{where}: batch {batch} is larger than the maximum this model was compiled for "
                       f"({buckets[-1]}); compile with max_batch={batch} (the CLI's --batch 1..{batch})")


def pad_batch(x: Any, size: int) -> Any:
    """`x` with zero rows appended up to `size` along axis 0 (torch tensors stay torch tensors)."""
    missing = size - x.shape[0]
    if missing == 0:
        return x
    if isinstance(x, np.ndarray):
        return np.concatenate([x, np.zeros((missing,) + x.shape[1:], x.dtype)])
    import torch  # only a torch tensor gets here

    return torch.cat([x, x.new_zeros((missing,) + tuple(x.shape[1:]))])


class BatchedModel(CompiledModel):
    """Compiled models per batch bucket; a call runs the smallest bucket that holds the batch.

    `graph` is the largest bucket's graph; `plans[b]` and `models[b]` are bucket b's plan and model."""

    def __init__(self, models: Mapping[int, CompiledModel], plans: Mapping[int, Any] | None = None) -> None:
        self.models = dict(sorted(models.items()))
        self.buckets = tuple(self.models)
        largest = self.models[self.buckets[-1]]
        self.backend = largest.backend
        self.graph = largest.graph
        self.dtype = largest.dtype
        self.plans = dict(plans or {})
        self.plan = self.plans.get(self.buckets[-1])
        self.pass_records = getattr(largest, "pass_records", [])

    @property
    def max_batch(self) -> int:
        return self.buckets[-1]

    def _bucket_inputs(self, inputs: tuple[Any, ...]) -> tuple[int, CompiledModel, list[Any]]:
        if not inputs:
            raise BackendError(f"graph '{self.graph.name}' takes {len(self.graph.inputs)} input(s), got none")
        batch = int(inputs[0].shape[0]) if getattr(inputs[0], "shape", ()) else 0
        if batch <= 0 or any(getattr(x, "shape", (None,))[0] != batch for x in inputs):
            raise BackendError(f"inputs of graph '{self.graph.name}' must share a positive batch axis 0; got "
                               f"shapes {[tuple(getattr(x, 'shape', ())) for x in inputs]}")
        bucket = bucket_for(batch, self.buckets, f"graph '{self.graph.name}' on backend '{self.backend}'")
        return batch, self.models[bucket], [pad_batch(x, bucket) for x in inputs]

    def __call__(self, *inputs: Any) -> Any:
        batch, model, padded = self._bucket_inputs(inputs)
        out = model(*padded)
        if isinstance(out, tuple):
            return tuple(o[:batch] for o in out)
        return out[:batch]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        batch, model, padded = self._bucket_inputs(tuple(np.asarray(x) for x in inputs))
        return [np.ascontiguousarray(o[:batch]) for o in model.run(*padded)]
