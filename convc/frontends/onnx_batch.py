"""An ONNX model's symbolic batch axis, kept: the imported graph runs every batch size.

A model exported with a dynamic batch (torch.onnx.export(..., dynamic_axes={"x": {0: "N"}})) declares
axis 0 of its inputs as a symbol. convc graphs have static shapes, so the import builds the graph for one
batch size (1 unless input_shapes say otherwise) and records the symbol on every input node:

    net = from_onnx("resnet18_dynamic.onnx")       # inputs (1, 3, 224, 224), dynamic_batch="N"
    model = convc.compile(net, max_batch=64)       # one compile, buckets 1, 2, 4, ..., 64
    model.run(x_of_batch_5)

Exporters compute shapes at run time (Shape -> Gather -> Concat -> Reshape), and the import folds those
to constants for the batch it builds. Whether that folding depended on the batch is checked, not
assumed: the model is imported a second time at PROBE_BATCH and must give exactly the graph that
convc.batching.rebatch makes from the first import. When it does not (a node mixes the examples of a
batch), the batch stays fixed: a warning says why, and the inputs record `fixed_batch` so that compiling
for other batch sizes is refused instead of computing wrong numbers.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convc.batching import rebatch
from convc.dsl import Network
from convc.errors import ConvcError
from convc.ir import Graph
from convc.serialize import graph_to_dict

# The second batch size the model is imported at: neither 1 (broadcasts hide batch-dependent shapes)
# nor a power of two (the batch buckets), so a coincidence with a bucket cannot pass the check.
PROBE_BATCH = 3
UNNAMED_BATCH = "?"


def declared_batch(tensor_type: Any) -> int | None:
    """Axis 0 of an ONNX input as the model declares it: a size, or None when it is symbolic or unnamed."""
    dims = tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value") or dims[0].dim_value <= 0:
        return None
    return int(dims[0].dim_value)


def batch_symbol(inputs: Sequence[Any]) -> str | None:
    """The symbol every run-time input (an ONNX ValueInfoProto) declares for axis 0 ('N', or '?' when
    unnamed), or None when an input has a fixed batch, no axis 0, or the inputs name different symbols."""
    symbols = set()
    for spec in inputs:
        dims = spec.type.tensor_type.shape.dim
        if not dims or declared_batch(spec.type.tensor_type) is not None:
            return None
        symbols.add(dims[0].dim_param or UNNAMED_BATCH)
    named = symbols - {UNNAMED_BATCH}
    if len(named) > 1 or not symbols:
        return None
    return named.pop() if named else UNNAMED_BATCH


def keep_symbolic_batch(net: Network, inputs: Sequence[Any], import_at: Callable[[int], Network]) -> Network:
    """`net`, imported from a model with run-time `inputs`, with its input nodes marked `dynamic_batch`
    when the model's batch is symbolic and `import_at(batch)` (the same import at another batch size)
    gives the same graph; marked `fixed_batch`, with a warning, when it does not."""
    symbol = batch_symbol(inputs)
    if symbol is None:
        return net
    problem = batch_dependence(net.graph, import_at)
    if problem is None:
        mark_inputs(net.graph, "dynamic_batch", symbol)
        return net
    batch = net.graph.inputs[0].type.shape[0]
    warnings.warn(f"ONNX model '{net.name}': its symbolic batch '{symbol}' is imported as the fixed size "
                  f"{batch}, because {problem}; to run another batch size import it again with "
                  f"input_shapes (the CLI's --batch N)", stacklevel=3)
    mark_inputs(net.graph, "fixed_batch", f"the ONNX model's graph changes with its batch size: {problem}")
    return net


def batch_dependence(graph: Graph, import_at: Callable[[int], Network]) -> str | None:
    """None when `import_at(PROBE_BATCH)` gives `graph` re-typed for that batch; otherwise what differs,
    in words."""
    try:
        probe = import_at(PROBE_BATCH).graph
    except ConvcError as e:
        return f"importing it for batch {PROBE_BATCH} fails: {one_line(e)}"
    try:
        expected = rebatch(graph, PROBE_BATCH)
    except ConvcError as e:
        return one_line(e)
    return graph_difference(expected, probe, PROBE_BATCH)


def graph_difference(expected: Graph, probe: Graph, batch: int) -> str | None:
    """The first difference between two graphs (nodes, attributes, types, outputs, parameter values)."""
    mine, theirs = graph_to_dict(expected), graph_to_dict(probe)
    for a, b in zip(mine["nodes"], theirs["nodes"]):
        if a != b:
            return (f"node '{a['name']}' ({a['op']}) differs at batch {batch}: "
                    f"{describe(a)} re-typed from the first import, {describe(b)} imported")
    if len(mine["nodes"]) != len(theirs["nodes"]) or mine["outputs"] != theirs["outputs"]:
        return f"the graph imported at batch {batch} has other nodes or outputs"
    for key, array in expected.params.items():
        other = probe.params.get(key)
        if other is None or other.shape != array.shape or not np.array_equal(other, array, equal_nan=True):
            return f"parameter '{key}' differs at batch {batch}"
    return None


def describe(node: dict[str, Any]) -> str:
    return f"{node['op']}{node['attrs']} : {tuple(node['type']['shape'])}"


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def mark_inputs(graph: Graph, attr: str, value: str) -> None:
    for node in graph.inputs:
        graph.replace_node(node.replace(attrs={**node.attrs, attr: value}))
