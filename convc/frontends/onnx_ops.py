"""ONNX ops -> convc layers, one handler per op type, with attributes as the ONNX spec defines them
(handler conventions: convc.frontends.onnx_context; pooling: convc.frontends.onnx_pooling).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convc.dsl import Value
from convc.frontends import onnx_layers
from convc.frontends import onnx_pooling as pooling
from convc.frontends.building import (
    FrontendError,
    bias_add_constant,
    reshape_as_flatten,
    resolve_target_shape,
)
from convc.frontends.onnx_context import Handler, OnnxCtx, Padded, int_attr, spatial_pads


# ---------------------------------------------------------------------------- layers with weights
def conv(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    w = ctx.const(ins[1], "W (the weight)")
    nd = w.ndim - 2
    source = ins[0]
    x = source.value if isinstance(source, Padded) else ctx.value(source, "X")
    if nd not in (1, 2, 3) or len(x.shape) != nd + 2:
        raise FrontendError(f"a weight of shape {w.shape} on an input of shape {x.shape} is not a 1D, 2D or "
                            f"3D convolution")
    kernel = tuple(int(k) for k in attrs.get("kernel_shape", w.shape[2:]))
    if kernel != tuple(w.shape[2:]):
        raise FrontendError(f"kernel_shape {kernel} differs from the weight's {tuple(w.shape[2:])}")
    b = None if len(ins) < 3 or ins[2] is None else ctx.const(ins[2], "B (the bias)")
    strides, dilations = int_attr(attrs, "strides", nd, 1), int_attr(attrs, "dilations", nd, 1)
    if isinstance(source, Padded):  # a zero Pad before the Conv: its padding joins the Conv's
        padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], source.pads))
        own = spatial_pads(ctx, attrs, padded, kernel, strides, dilations)
        pads = tuple((a + c, b + d) for (a, b), (c, d) in zip(source.pads, own))
    else:
        pads = spatial_pads(ctx, attrs, x.shape[2:], kernel, strides, dilations)
    y = ctx.net.conv(x, int(w.shape[0]), kernel, stride=strides, padding=pads, dilation=dilations,
                     groups=int(attrs.get("group", 1)), bias=b is not None, name=ctx.name, ndim=nd)
    ctx.bind(y, "weight", w, ctx.key(1))
    if b is not None:
        ctx.bind(y, "bias", b, ctx.key(2))
    return [y]


def gemm(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Y = alpha * A' B' + beta * C  ->  linear with weight alpha * B'^T and bias beta * C (folded)."""
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if attrs.get("transA", 0):
        raise FrontendError("transA=1 (a transposed activation) is not supported; convc cannot transpose a "
                            "run-time tensor")
    a = ctx.value(ins[0], "A")
    b = ctx.const(ins[1], "B")
    weight = b if attrs.get("transB", 0) else b.T
    weight = weight * alpha if alpha != 1 else weight
    key = ctx.key(1) if alpha == 1 and attrs.get("transB", 0) else None
    c = ins[2] if len(ins) > 2 else None
    n = weight.shape[0]
    if isinstance(c, Value):
        y = _linear(ctx, a, weight, key, None, None, ctx.name)
        if beta != 1 or c.shape != y.shape:
            raise FrontendError(f"a run-time C of shape {c.shape} with beta={beta} is not supported (only C "
                                f"of the output's shape {y.shape} with beta=1)")
        return [ctx.net.add(y, c, name=f"{ctx.name}.add")]
    bias = None
    if c is not None:
        rows = np.broadcast_to(np.asarray(c, np.float64), (max(a.shape[0], 1), n))
        if not np.all(rows == rows[:1]):
            raise FrontendError(f"C of shape {c.shape} differs between rows of the batch; convc's bias is "
                                f"one vector for every example")
        bias = (rows[0] * beta).astype(c.dtype)
        ckey = ctx.key(2) if beta == 1 and c.shape == (n,) else None
    return [_linear(ctx, a, weight, key, bias, ckey if c is not None else None, ctx.name)]


def _linear(ctx: OnnxCtx, x: Value, weight: np.ndarray, wkey: str | None, bias: np.ndarray | None,
            bkey: str | None, name: str) -> Value:
    if len(x.shape) != 2:
        raise FrontendError(f"a matrix product on a {len(x.shape)}D input {x.shape} is not supported; "
                            f"convc's linear takes (N, features)")
    y = ctx.net.linear(x, int(weight.shape[0]), bias=bias is not None, name=name)
    ctx.bind(y, "weight", weight, wkey)
    if bias is not None:
        ctx.bind(y, "bias", bias, bkey)
    return y


def matmul(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    lazy = onnx_layers.layout_rule("MatMul", ctx, ins, attrs)
    if lazy is not None:
        return lazy
    a = ctx.value(ins[0], "A")
    b = ctx.const(ins[1], "B")
    if b.ndim != 2:
        raise FrontendError(f"MatMul with a {b.ndim}D constant B {b.shape} is not supported (only 2D "
                            "weights)")
    return [_linear(ctx, a, np.ascontiguousarray(b.T), None, None, None, ctx.name)]


def batch_normalization(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    if attrs.get("training_mode", 0):
        raise FrontendError("training_mode=1 normalizes with batch statistics; convc imports inference "
                            "graphs")
    if any(ctx.output_used(i) for i in (1, 2, 3, 4)):
        raise FrontendError("the running-statistics outputs (training mode) are not supported")
    x = ctx.value(ins[0], "X")
    y = ctx.net.batch_norm(x, eps=float(attrs.get("epsilon", 1e-5)), name=ctx.name)
    for i, slot in enumerate(("weight", "bias", "running_mean", "running_var"), start=1):
        ctx.bind(y, slot, ctx.const(ins[i], slot), ctx.key(i))
    return [y]


def lrn(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    size = int(attrs["size"])
    if size % 2 == 0:
        raise FrontendError(f"an even size={size} is not supported: ONNX centres an even window one channel "
                            f"later than convc's (torch's) LRN does")
    x = ctx.value(ins[0], "X")
    return [ctx.net.lrn(x, size, float(attrs.get("alpha", 1e-4)), float(attrs.get("beta", 0.75)),
                        float(attrs.get("bias", 1.0)), name=ctx.name)]


# ---------------------------------------------------------------------------- elementwise
def activation(kind: str, param: str | None = None, default: float = 0.0) -> Handler:
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = ctx.value(ins[0], "X")
        kw = {} if param is None else {param: float(attrs.get("alpha", default))}
        return [getattr(ctx.net, kind)(x, name=ctx.name, **kw)]
    return handler


def add(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return onnx_layers.layout_rule("Add", ctx, ins, attrs) or sum_(ctx, ins, attrs)


def sum_(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Run-time operands add pairwise (same shapes); constant ones become one bias_add."""
    values = [v for v in ins if isinstance(v, Value)]
    consts = [v for v in ins if isinstance(v, np.ndarray)]
    y = values[0]
    for i, v in enumerate(values[1:]):
        if v.shape != y.shape:
            raise FrontendError(f"adding run-time tensors of shapes {y.shape} and {v.shape} is not "
                                f"supported: convc adds equal shapes (a broadcast operand must be a "
                                f"constant)")
        y = ctx.net.add(y, v, name=ctx.name if i == len(values) - 2 and not consts else f"{ctx.name}.{i}")
    if consts:
        total = np.sum(np.broadcast_arrays(*consts), axis=0) if len(consts) > 1 else consts[0]
        key = ctx.key(next(i for i, v in enumerate(ins) if v is consts[0])) if len(consts) == 1 else None
        y = bias_add_constant(ctx.net, y, total, ctx.name, key, "constant operand")
    return [y]


def concat(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    values = [ctx.value(v, "each operand") for v in ins if v is not None]
    return [ctx.net.concat(values, axis=int(attrs["axis"]), name=ctx.name)]


def softmax(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ctx.value(ins[0], "input")
    rank = len(x.shape)
    axis = int(attrs.get("axis", 1 if ctx.opset < 13 else -1))
    if not -rank <= axis < rank:  # ONNX allows [-rank, rank - 1]; anything else is a broken model
        raise FrontendError(f"axis {axis} is out of range for a rank-{rank} input (valid: {-rank} to {rank - 1})")
    axis %= rank
    if ctx.opset < 13 and math.prod(x.shape[axis + 1:]) != 1:
        raise FrontendError(f"Softmax before opset 13 normalizes axes {axis}..{rank - 1} of {x.shape} "
                            f"together (as one 2D row); convc's softmax takes one axis (re-export with "
                            f"opset >= 13)")
    return [ctx.net.softmax(x, axis=axis, name=ctx.name)]


# ---------------------------------------------------------------------------- shape and plumbing
def flatten(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ctx.value(ins[0], "input")
    axis = int(attrs.get("axis", 1))
    axis = axis + len(x.shape) if axis < 0 else axis  # ONNX allows axis in [-rank, rank]
    target = (math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
    return [reshape_as_flatten(ctx.net, x, target, ctx.name, "Flatten")]


def reshape(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    lazy = onnx_layers.layout_rule("Reshape", ctx, ins, attrs)
    if lazy is not None:
        return lazy
    x = ctx.value(ins[0], "data")
    shape = ctx.const(ins[1], "shape")
    target = resolve_target_shape(x.shape, shape.tolist(), zero_copies=not attrs.get("allowzero", 0),
                                  where="Reshape")
    return [reshape_as_flatten(ctx.net, x, target, ctx.name, "Reshape")]


def dropout(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    if ctx.output_used(1):
        raise FrontendError("the mask output is not supported")
    ratio = float(attrs.get("ratio", 0.5))
    if len(ins) > 1 and ins[1] is not None:
        ratio = float(ctx.const(ins[1], "ratio"))
    training = len(ins) > 2 and ins[2] is not None and bool(ctx.const(ins[2], "training_mode"))
    if training and ratio > 0:
        raise FrontendError("training-mode dropout is random; convc imports inference graphs")
    x = ctx.value(ins[0], "data")
    return [ctx.net.dropout(x, ratio, name=ctx.name) if 0 <= ratio < 1 else x]


def identity(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return [ins[0]]


HANDLERS: dict[str, Handler] = {
    "Conv": conv, "Gemm": gemm, "MatMul": matmul, "BatchNormalization": batch_normalization,
    "MaxPool": pooling.pool("max"), "AveragePool": pooling.pool("avg"),
    "GlobalMaxPool": pooling.global_pool("max"),
    "GlobalAveragePool": pooling.global_pool("avg"), "ReduceMean": pooling.reduce("avg"),
    "ReduceMax": pooling.reduce("max"), "Pad": pooling.pad, "LRN": lrn,
    "Relu": activation("relu"), "Sigmoid": activation("sigmoid"), "Tanh": activation("tanh"),
    "LeakyRelu": activation("leaky_relu", "negative_slope", 0.01), "Elu": activation("elu", "alpha", 1.0),
    "Add": add, "Sum": sum_, "Concat": concat, "Softmax": softmax,
    "Flatten": flatten, "Reshape": reshape, "Dropout": dropout, "Identity": identity,
}


def _broadcast_operands(node: Any, shapes: dict[str, tuple[int, ...]]) -> list[int]:
    """For Add/Sum on graph inputs: the operands smaller than the broadcast result must be constants."""
    known = [shapes.get(i) for i in node.input]
    if any(s is None for s in known):
        return []
    try:
        result = np.broadcast_shapes(*known)
    except ValueError:
        return []
    return [i for i, s in enumerate(known) if tuple(s) != tuple(result)]


def _gemm_operands(node: Any, shapes: dict[str, tuple[int, ...]]) -> list[int]:
    """B always; C unless it is a full (M, N) matrix, which a run-time add can take."""
    c = shapes.get(node.input[2]) if len(node.input) > 2 else None
    return [1] if c is not None and len(c) == 2 and c[0] > 1 else [1, 2]


# Operand positions that convc needs as constants (see onnx_import.constant_inputs).
WEIGHT_OPERANDS: dict[str, Any] = {
    "Conv": (1, 2), "BatchNormalization": (1, 2, 3, 4), "Gemm": _gemm_operands, "MatMul": (1,),
    "Reshape": (1,), "Dropout": (1, 2), "ConstantOfShape": (0,), "Pad": (1, 2, 3), "ReduceMean": (1,),
    "ReduceMax": (1,),
    "Add": _broadcast_operands, "Sum": _broadcast_operands,
}

# The ops of mobile and modern networks (and the layouts ConvNeXt and ShuffleNet export to).
HANDLERS.update(onnx_layers.HANDLERS)
WEIGHT_OPERANDS.update(onnx_layers.WEIGHT_OPERANDS)
