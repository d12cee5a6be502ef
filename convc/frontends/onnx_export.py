"""convc graph -> a standard ONNX model (opset 17) that onnxruntime or any ONNX runtime can run.

    to_onnx(net, "resnet18.onnx")                    # the graph as written
    to_onnx(net, "resnet18-opt.onnx", optimized=True)  # after -O2: BN folded, dropout gone, epilogues fused

Parameters become initializers under their convc names; every node's output tensor keeps the node's
name. Whatever convc fused is written back as standard ops: a conv or linear's epilogue becomes the
activations and Adds it stands for, a Winograd-transformed weight is turned back into 3x3 filters, and
`scale_shift` becomes Mul and Add. The zoo's ops (SiLU, GELU, hardswish, layer_norm over channels, channel
shuffle, slices, adaptive pooling to any size, ...) are written by onnx_export_ops.py. An op ONNX cannot
express the same way is an error naming the node. `import onnx` happens here, not at `import convc`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from convc.dsl import Network
from convc.frontends.onnx_export_ops import ACTIVATION_STEPS, ZOO_WRITERS, per_channel, write_activation
from convc.frontends.onnx_writer import ELEM_TYPE, OPSET, ExportError, OnnxWriter
from convc.ir import Graph, Node
from convc.ops.convolution import WINOGRAD_TILES
from convc.serialize import atomic_write
from convc.winograd import untransform_filters


def _pads(padding: tuple[tuple[int, int], ...]) -> list[int]:
    return [lo for lo, _ in padding] + [hi for _, hi in padding]


def _epilogue(w: OnnxWriter, node: Node, result: str, residuals: list[str]) -> str:
    """Writes the fused epilogue steps after `result` (the conv/linear's own output); the last step's
    output is named after the node."""
    steps = node.attrs["epilogue"]
    pending = iter(residuals)
    for i, step in enumerate(steps):
        out = node.name if i == len(steps) - 1 else f"{node.name}/{step[0]}_{i}"
        if step[0] == "add":
            result = w.emit("Add", [result, next(pending)], out)
        else:
            result = write_activation(w, tuple(step), result, out, node.type.dtype)
    return result


def _layer_output(node: Node) -> str:
    return f"{node.name}/linear" if node.attrs["epilogue"] else node.name


def _conv(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    a = node.attrs
    weight = params[0]
    if a.get("weight_transformed"):  # back to (K, C, 3, 3) filters, exactly in float64
        u = w.graph.params[weight]
        filters = untransform_filters(u, WINOGRAD_TILES[a["algo"]]).astype(u.dtype)
        weight = w.constant(f"{weight}.filters", filters)
    x = acts[0]
    if a.get("input_scale"):  # the squeeze-excitation multiply a Triton compile fused into the conv
        x = w.emit("Mul", [x, acts[-1]], f"{node.name}/input_scale")
        acts = acts[:-1]
    inputs = [x, weight] + params[1:]
    w.emit("Conv", inputs, _layer_output(node), kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
           pads=_pads(a["padding"]), dilations=list(a["dilation"]), group=int(a["groups"]))
    _epilogue(w, node, _layer_output(node), acts[1:])


def _linear(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    w.emit("Gemm", [acts[0]] + params, _layer_output(node), transB=1)
    _epilogue(w, node, _layer_output(node), acts[1:])


def _scale_shift(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    rank = len(node.type.shape)
    scaled = w.emit("Mul", [acts[0], per_channel(w, params[0], rank)], f"{node.name}/scale")
    w.emit("Add", [scaled, per_channel(w, params[1], rank)], node.name)


def _pool(kind: str) -> Callable[[OnnxWriter, Node, list[str], list[str]], None]:
    def write(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
        a = node.attrs
        extra = {"count_include_pad": int(a["count_include_pad"])} if kind == "AveragePool" else {}
        w.emit(kind, acts, node.name, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
               pads=list(a["padding"]) * 2, ceil_mode=int(a["ceil_mode"]), **extra)
    return write


def _lrn(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    a = node.attrs
    if a["size"] % 2 == 0:  # ONNX centres an even window one channel later than convc (and torch)
        raise ExportError(f"node '{node.name}' (lrn): an even window size {a['size']} has no ONNX LRN "
                          f"equivalent; only odd sizes export")
    w.emit("LRN", acts, node.name, size=int(a["size"]), alpha=float(a["alpha"]), beta=float(a["beta"]),
           bias=float(a["k"]))


def _flatten(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    start = node.attrs["start_dim"]
    if start == 1:
        w.emit("Flatten", acts, node.name, axis=1)
        return
    shape = w.constant(f"{node.name}/shape", np.array([0] * start + [-1], np.int64))
    w.emit("Reshape", [acts[0], shape], node.name)


def _maxout(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    x = w.graph.node(acts[0]).type.shape
    k = node.attrs["k"]
    shape = w.constant(f"{node.name}/shape", np.array((0, x[1] // k, k) + x[2:], np.int64))
    grouped = w.emit("Reshape", [acts[0], shape], f"{node.name}/grouped")
    w.emit("ReduceMax", [grouped], node.name, axes=[2], keepdims=0)


def _simple(op_type: str, **fixed: Any) -> Callable[[OnnxWriter, Node, list[str], list[str]], None]:
    def write(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
        attrs = {key: (float(node.attrs[src]) if isinstance(node.attrs[src], float) else node.attrs[src])
                 for key, src in fixed.items()}
        w.emit(op_type, acts + params, node.name, **attrs)
    return write


WRITERS: dict[str, Callable[[OnnxWriter, Node, list[str], list[str]], None]] = {
    **{f"conv{nd}d": _conv for nd in (1, 2, 3)},
    **{f"max_pool{nd}d": _pool("MaxPool") for nd in (1, 2, 3)},
    **{f"avg_pool{nd}d": _pool("AveragePool") for nd in (1, 2, 3)},
    "linear": _linear, "scale_shift": _scale_shift, "lrn": _lrn, "flatten": _flatten, "maxout": _maxout,
    "batch_norm": _simple("BatchNormalization", epsilon="eps"),
    "dropout": _simple("Identity"), "identity": _simple("Identity"),
    "softmax": _simple("Softmax", axis="axis"),
    "add": _simple("Add"), "bias_add": _simple("Add"), "concat": _simple("Concat", axis="axis"),
    "global_avg_pool": _simple("GlobalAveragePool"), "global_max_pool": _simple("GlobalMaxPool"),
    **ZOO_WRITERS,
}


def graph_to_onnx(graph: Graph) -> Any:
    """The ModelProto of `graph` (verified first)."""
    graph.verify()
    w = OnnxWriter(graph)
    onnx = w.onnx
    unknown = sorted({f"{n.name} ({n.op})" for n in graph.nodes() if n.op not in WRITERS
                      and n.op not in ("input", "param")}
                     | {f"{n.name} ({n.op} with a fused {s[0]})" for n in graph.nodes()
                        for s in n.attrs.get("epilogue", ()) if s[0] != "add" and s[0] not in ACTIVATION_STEPS})
    if unknown:
        more = " ..." if len(unknown) > 8 else ""
        raise ExportError(f"graph '{graph.name}': no ONNX export for node(s) {', '.join(unknown[:8])}{more}; "
                          f"exportable ops: {', '.join(sorted(WRITERS))}")
    for node in graph.nodes():
        if node.op in ("input", "param"):
            continue
        acts = list(graph.activation_inputs(node))
        params = list(node.inputs[len(acts):])
        for p in params:  # as they are; a writer that reshapes or transforms one adds its own form
            w.initializers.setdefault(p, np.ascontiguousarray(graph.params[p]))
        WRITERS[node.op](w, node, acts, params)
    used = {name for n in w.nodes for name in n.input}
    w.initializers = {name: a for name, a in w.initializers.items() if name in used}

    # An imported model's symbolic batch (the inputs' dynamic_batch) is written back as that symbol:
    # the writers above never bake the batch into a node (reshapes copy axis 0 with a 0).
    symbols = {n.attrs.get("dynamic_batch") for n in graph.inputs}
    batch = symbols.pop() if len(symbols) == 1 else None

    def value_info(name: str) -> Any:
        t = graph.node(name).type
        dims: list[Any] = list(t.shape)
        if batch is not None and dims:
            dims[0] = None if batch == "?" else batch
        return onnx.helper.make_tensor_value_info(name, ELEM_TYPE[t.dtype], dims)

    initializers = [onnx.numpy_helper.from_array(np.asarray(a), name) for name, a in w.initializers.items()]
    body = onnx.helper.make_graph(w.nodes, graph.name, [value_info(n.name) for n in graph.inputs],
                                  [value_info(o) for o in graph.outputs], initializers)
    model = onnx.helper.make_model(body, producer_name="convc",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime releases of the last years
    onnx.checker.check_model(model)
    return model


def export_graph(model: Network | Graph, optimized: bool = False) -> Graph:
    """The graph to write: as given, or after the -O2 rewrites that make sense in ONNX (no algorithm
    choice, no Winograd weights: those are the runtime's business)."""
    from convc.compiler import as_graph, optimize

    graph = as_graph(model)
    if not optimized:
        return graph
    g, _, _ = optimize(graph, backend="numpy", opt_level=2, disable=("choose_conv_algo", "winograd_weights"),
                       check_numerics=False)
    return g


def to_onnx(model: Network | Graph, path: str | os.PathLike[str] | None = None, *,
            optimized: bool = False) -> Any:
    """Writes `model` as an ONNX file at `path` (atomically) and returns the ModelProto.

        to_onnx(convc.models.get("resnet18"), "r18.onnx", optimized=True)
    """
    proto = graph_to_onnx(export_graph(model, optimized))
    if path is not None:
        target = Path(path)
        try:
            atomic_write(target, proto.SerializeToString())
        except OSError as e:
            raise ExportError(f"cannot write the ONNX model to {target}: {e.strerror or e}") from None
    return proto


__all__ = ["OPSET", "ExportError", "graph_to_onnx", "to_onnx"]
