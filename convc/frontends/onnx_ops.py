"""ONNX ops -> convc layers, one handler per op type, with attributes as the ONNX spec defines them.

A handler takes (ctx, inputs, attrs): inputs are convc Values (run-time tensors), NumPy arrays (known at
import) or None (an omitted optional input); it returns the node's outputs in order.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convc.dsl import Network, Value
from convc.frontends.building import (FrontendError, bias_add_constant, bind_param, reshape_as_flatten,
                                      resolve_target_shape)
from convc.ops import pool_output_size


@dataclass
class OnnxCtx:
    """One node being converted: the network, its layer name, a label for errors, the model's opset,
    the ONNX names of its inputs (so unchanged initializers keep their names) and of its outputs."""

    net: Network
    name: str
    where: str
    opset: int
    input_names: list[str]
    initializers: set[str]
    output_names: list[str]
    consumed: set[str]  # tensor names some node reads, plus the graph outputs

    def value(self, v: Any, what: str) -> Value:
        if isinstance(v, Value):
            return v
        raise FrontendError(f"{what} must be a run-time tensor here, got a constant")

    def const(self, v: Any, what: str) -> np.ndarray:
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, Value):
            raise FrontendError(f"{what} must be a constant (an initializer), but it is computed at run time; "
                                f"convc layers take fixed weights")
        raise FrontendError(f"{what} is missing")

    def key(self, index: int) -> str | None:
        """The ONNX name of input `index` when it is an initializer (a parameter name worth keeping)."""
        name = self.input_names[index] if index < len(self.input_names) else ""
        return name if name in self.initializers else None

    def bind(self, layer: Value, slot: str, array: np.ndarray, key: str | None) -> None:
        bind_param(self.net, layer, slot, key, array, copy=False)  # arrays here are the importer's own

    def output_used(self, index: int) -> bool:
        return index < len(self.output_names) and self.output_names[index] in self.consumed


Handler = Callable[[OnnxCtx, list[Any], dict[str, Any]], Sequence[Any]]


def _spatial_pads(ctx: OnnxCtx, attrs: dict[str, Any], spatial: tuple[int, ...], kernel: Sequence[int],
                  strides: Sequence[int], dilations: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """auto_pad / pads [x1_begin, x2_begin, ..., x1_end, x2_end, ...] -> ((lo, hi), ...) per axis."""
    nd = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pairs.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return tuple(pairs)
    if auto == "VALID":
        return ((0, 0),) * nd
    if auto != "NOTSET":
        raise FrontendError(f"auto_pad={auto!r} is not valid; ONNX allows NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * nd))]
    if len(pads) != 2 * nd or any(p < 0 for p in pads):
        raise FrontendError(f"pads {pads} must be {2 * nd} non-negative integers")
    return tuple((pads[i], pads[i + nd]) for i in range(nd))


def _ints(attrs: dict[str, Any], key: str, n: int, default: int) -> tuple[int, ...]:
    v = tuple(int(i) for i in attrs.get(key, [default] * n))
    if len(v) != n:
        raise FrontendError(f"{key} {v} must have {n} entries")
    return v


# ---------------------------------------------------------------------------- layers with weights
def conv(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    w = ctx.const(ins[1], "W (the weight)")
    nd = w.ndim - 2
    x = ctx.value(ins[0], "X")
    if nd not in (1, 2, 3) or len(x.shape) != nd + 2:
        raise FrontendError(f"a weight of shape {w.shape} on an input of shape {x.shape} is not a 1D, 2D or "
                            f"3D convolution")
    kernel = tuple(int(k) for k in attrs.get("kernel_shape", w.shape[2:]))
    if kernel != tuple(w.shape[2:]):
        raise FrontendError(f"kernel_shape {kernel} differs from the weight's {tuple(w.shape[2:])}")
    b = None if len(ins) < 3 or ins[2] is None else ctx.const(ins[2], "B (the bias)")
    strides, dilations = _ints(attrs, "strides", nd, 1), _ints(attrs, "dilations", nd, 1)
    pads = _spatial_pads(ctx, attrs, x.shape[2:], kernel, strides, dilations)
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
            raise FrontendError(f"C of shape {c.shape} differs between rows of the batch; convc's bias is one "
                                f"vector for every example")
        bias = (rows[0] * beta).astype(c.dtype)
        ckey = ctx.key(2) if beta == 1 and c.shape == (n,) else None
    return [_linear(ctx, a, weight, key, bias, ckey if c is not None else None, ctx.name)]


def _linear(ctx: OnnxCtx, x: Value, weight: np.ndarray, wkey: str | None, bias: np.ndarray | None,
            bkey: str | None, name: str) -> Value:
    if len(x.shape) != 2:
        raise FrontendError(f"a matrix product on a {len(x.shape)}D input {x.shape} is not supported; convc's "
                            f"linear takes (N, features)")
    y = ctx.net.linear(x, int(weight.shape[0]), bias=bias is not None, name=name)
    ctx.bind(y, "weight", weight, wkey)
    if bias is not None:
        ctx.bind(y, "bias", bias, bkey)
    return y


def matmul(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a = ctx.value(ins[0], "A")
    b = ctx.const(ins[1], "B")
    if b.ndim != 2:
        raise FrontendError(f"MatMul with a {b.ndim}D constant B {b.shape} is not supported (only 2D weights)")
    return [_linear(ctx, a, np.ascontiguousarray(b.T), None, None, None, ctx.name)]


def batch_normalization(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    if attrs.get("training_mode", 0):
        raise FrontendError("training_mode=1 normalizes with batch statistics; convc imports inference graphs")
    if any(ctx.output_used(i) for i in (1, 2, 3, 4)):
        raise FrontendError("the running-statistics outputs (training mode) are not supported")
    x = ctx.value(ins[0], "X")
    y = ctx.net.batch_norm(x, eps=float(attrs.get("epsilon", 1e-5)), name=ctx.name)
    for i, slot in enumerate(("weight", "bias", "running_mean", "running_var"), start=1):
        ctx.bind(y, slot, ctx.const(ins[i], slot), ctx.key(i))
    return [y]


# ---------------------------------------------------------------------------- pooling
def pool(kind: str) -> Handler:
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = ctx.value(ins[0], "X")
        nd = len(x.shape) - 2
        if nd not in (1, 2, 3):
            raise FrontendError(f"expects an (N, C, 1 to 3 spatial) input, got shape {x.shape}")
        if kind == "max" and ctx.output_used(1):
            raise FrontendError("the Indices output is not supported: convc does not compute indices")
        kernel = _ints(attrs, "kernel_shape", nd, 0)
        strides = _ints(attrs, "strides", nd, 1)
        if any(d != 1 for d in _ints(attrs, "dilations", nd, 1)):
            raise FrontendError(f"dilations {attrs['dilations']} are not supported: convc pools are not dilated")
        pads = _spatial_pads(ctx, attrs, x.shape[2:], kernel, strides, (1,) * nd)
        ceil = bool(attrs.get("ceil_mode", 0))
        include_pad = bool(attrs.get("count_include_pad", 0))
        if _single_window_over_all(x.shape[2:], kernel, strides, pads, ceil) and not (
                kind == "avg" and include_pad and any(p for pair in pads for p in pair)):
            # One window covering every value (as GoogLeNet's 7x7 head pool on a 6x6 map): a global pool.
            return [getattr(ctx.net, f"global_{kind}_pool")(x, name=ctx.name)]
        padding, ceil_mode = _pool_layout(x.shape[2:], kernel, strides, pads, ceil,
                                          exact=kind == "avg" and include_pad)
        return [ctx.net.pool(kind, x, kernel, stride=strides, padding=padding, ceil_mode=ceil_mode,
                             count_include_pad=include_pad, name=ctx.name, ndim=nd)]
    return handler


def _pool_layout(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                 pads: tuple[tuple[int, int], ...], ceil: bool, exact: bool) -> tuple[tuple[int, ...], bool]:
    """convc pools pad symmetrically. Where padding never counts (max, or an average over real values
    only), ONNX's (lo, hi) padding equals symmetric padding lo plus the ceil_mode giving the same number
    of windows: the windows start at the same places and see the same real values."""
    onnx_out = tuple(_onnx_pool_size(s, k, st, lo, hi, ceil) for s, k, st, (lo, hi) in
                     zip(spatial, kernel, strides, pads))
    lo = tuple(p[0] for p in pads)
    options = (ceil,) if exact else (ceil, not ceil)
    if exact and any(a != b for a, b in pads):
        raise FrontendError(f"asymmetric pads {pads} with count_include_pad=1 are not supported: convc pools "
                            f"pad symmetrically")
    if any(2 * p > k for p, k in zip(lo, kernel)):
        raise FrontendError(f"pads {pads} larger than half the kernel {kernel} are not supported")
    for mode in options:
        if tuple(pool_output_size(s, k, st, p, mode) for s, k, st, p in zip(spatial, kernel, strides, lo)) == onnx_out:
            return lo, mode
    raise FrontendError(f"pads {pads} (ceil_mode={int(ceil)}) give {onnx_out} windows, which symmetric "
                        f"padding cannot reproduce")


def _single_window_over_all(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                            pads: tuple[tuple[int, int], ...], ceil: bool) -> bool:
    return all(_onnx_pool_size(s, k, st, lo, hi, ceil) == 1 and lo + s <= k
               for s, k, st, (lo, hi) in zip(spatial, kernel, strides, pads))


def _onnx_pool_size(size: int, k: int, s: int, lo: int, hi: int, ceil: bool) -> int:
    span = size + lo + hi - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + lo:  # as ONNX (and torch): no window may start in the end padding
        out -= 1
    return out


def global_pool(kind: str) -> Handler:
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = ctx.value(ins[0], "X")
        return [getattr(ctx.net, f"global_{kind}_pool")(x, name=ctx.name)]
    return handler


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
    return sum_(ctx, ins, attrs)


def sum_(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Run-time operands add pairwise (same shapes); constant ones become one bias_add."""
    values = [v for v in ins if isinstance(v, Value)]
    consts = [v for v in ins if isinstance(v, np.ndarray)]
    y = values[0]
    for i, v in enumerate(values[1:]):
        if v.shape != y.shape:
            raise FrontendError(f"adding run-time tensors of shapes {y.shape} and {v.shape} is not supported: "
                                f"convc adds equal shapes (a broadcast operand must be a constant)")
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
    axis = int(attrs.get("axis", 1 if ctx.opset < 13 else -1)) % rank
    if ctx.opset < 13 and math.prod(x.shape[axis + 1:]) != 1:
        raise FrontendError(f"Softmax before opset 13 normalizes axes {axis}..{rank - 1} of {x.shape} together "
                            f"(as one 2D row); convc's softmax takes one axis (re-export with opset >= 13)")
    return [ctx.net.softmax(x, axis=axis, name=ctx.name)]


# ---------------------------------------------------------------------------- shape and plumbing
def flatten(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ctx.value(ins[0], "input")
    axis = int(attrs.get("axis", 1))
    axis = axis + len(x.shape) if axis < 0 else axis  # ONNX allows axis in [-rank, rank]
    target = (math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
    return [reshape_as_flatten(ctx.net, x, target, ctx.name, "Flatten")]


def reshape(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
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
    "MaxPool": pool("max"), "AveragePool": pool("avg"),
    "GlobalMaxPool": global_pool("max"), "GlobalAveragePool": global_pool("avg"), "LRN": lrn,
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
    "Reshape": (1,), "Dropout": (1, 2), "ConstantOfShape": (0,),
    "Add": _broadcast_operands, "Sum": _broadcast_operands,
}
