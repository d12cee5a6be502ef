"""ONNX writers for the activations (standalone or fused into a conv/linear epilogue) and for the ops of
the torchvision zoo: mul, channel_scale, layer_norm, channel_shuffle, slice and adaptive_avg_pool.

Each writer emits standard opset-17 ops that compute what convc computes. Where opset 17 has no op of its
own (SiLU, GELU), the writer spells the formula out; layer_norm over channels moves the channels last for
LayerNormalization. ONNX float attributes are
float32, so in a float64 graph an activation with a constant (LeakyRelu's slope, Elu's alpha, HardSwish's
1/6) is spelled out too, with float64 initializers, to keep float64 all the way:

    write_activation(w, ("silu",), "conv1/linear", "conv1", "float32")   # Sigmoid, then Mul
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from convc.frontends.onnx_writer import OnnxWriter
from convc.ir import Node

Writer = Callable[[OnnxWriter, Node, list[str], list[str]], None]
# Activations that are one ONNX op, with the attribute their parameter becomes.
ONE_OP = {"relu": ("Relu", None), "sigmoid": ("Sigmoid", None), "tanh": ("Tanh", None),
          "hardswish": ("HardSwish", None), "leaky_relu": ("LeakyRelu", "alpha"), "elu": ("Elu", "alpha")}
ACTIVATION_STEPS = frozenset(ONE_OP) | {"clip", "hardsigmoid", "silu", "gelu", "gelu_tanh"}


def write_activation(w: OnnxWriter, step: tuple[Any, ...], x: str, out: str, dtype: str) -> str:
    """Writes one activation step (as in an epilogue: `("clip", 0.0, 6.0)`, `("gelu_tanh",)`) of `x`;
    the result is named `out`, helper values `out/...`."""
    kind = step[0]
    if dtype == "float64" and kind in FLOAT32_ATTRIBUTE:
        return FLOAT32_ATTRIBUTE[kind](w, step, x, out, dtype)
    if kind in ONE_OP:
        op_type, attr = ONE_OP[kind]
        return w.emit(op_type, [x], out, **({attr: float(step[1])} if attr else {}))
    if kind == "clip":
        low, high = w.scalar(f"{out}/min", step[1], dtype), w.scalar(f"{out}/max", step[2], dtype)
        return w.emit("Clip", [x, low, high], out)
    if kind == "hardsigmoid":  # clip(x + 3, 0, 6) / 6, as torch writes it
        shifted = w.emit("Add", [x, w.scalar(f"{out}/three", 3.0, dtype)], f"{out}/shifted")
        clipped = w.emit("Clip", [shifted, w.scalar(f"{out}/zero", 0.0, dtype),
                                  w.scalar(f"{out}/six", 6.0, dtype)], f"{out}/clipped")
        return w.emit("Div", [clipped, f"{out}/six"], out)
    if kind == "silu":  # x * sigmoid(x)
        return w.emit("Mul", [x, w.emit("Sigmoid", [x], f"{out}/sigmoid")], out)
    if kind == "gelu":  # x / 2 * (1 + erf(x / sqrt(2)))
        erf = w.emit("Erf", [w.emit("Div", [x, w.scalar(f"{out}/sqrt2", math.sqrt(2.0), dtype)],
                                    f"{out}/scaled")], f"{out}/erf")
        return _half_x_times_one_plus(w, x, erf, out, dtype)
    if kind == "gelu_tanh":  # x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
        cube = w.emit("Mul", [w.emit("Mul", [x, x], f"{out}/square"), x], f"{out}/cube")
        inner = w.emit("Add", [x, w.emit("Mul", [cube, w.scalar(f"{out}/c", 0.044715, dtype)],
                                         f"{out}/cubic")], f"{out}/inner")
        scaled = w.emit("Mul", [inner, w.scalar(f"{out}/k", math.sqrt(2.0 / math.pi), dtype)], f"{out}/arg")
        return _half_x_times_one_plus(w, x, w.emit("Tanh", [scaled], f"{out}/tanh"), out, dtype)
    raise KeyError(kind)


def _leaky_relu64(w: OnnxWriter, step: tuple[Any, ...], x: str, out: str, dtype: str) -> str:
    return w.emit("PRelu", [x, w.scalar(f"{out}/slope", step[1], dtype)], out)  # the slope as a tensor


def _elu64(w: OnnxWriter, step: tuple[Any, ...], x: str, out: str, dtype: str) -> str:
    """x where x > 0, else alpha * (exp(x) - 1); NaN fails the comparison and stays NaN through exp."""
    expm1 = w.emit("Sub", [w.emit("Exp", [x], f"{out}/exp"), w.scalar(f"{out}/one", 1.0, dtype)],
                   f"{out}/expm1")
    negative = w.emit("Mul", [expm1, w.scalar(f"{out}/alpha", step[1], dtype)], f"{out}/negative")
    positive = w.emit("Greater", [x, w.scalar(f"{out}/zero", 0.0, dtype)], f"{out}/positive")
    return w.emit("Where", [positive, x, negative], out)


def _hardswish64(w: OnnxWriter, step: tuple[Any, ...], x: str, out: str, dtype: str) -> str:
    return w.emit("Mul", [x, write_activation(w, ("hardsigmoid",), x, f"{out}/gate", dtype)], out)


FLOAT32_ATTRIBUTE = {"leaky_relu": _leaky_relu64, "elu": _elu64, "hardswish": _hardswish64}


def _half_x_times_one_plus(w: OnnxWriter, x: str, phi: str, out: str, dtype: str) -> str:
    one_plus = w.emit("Add", [phi, w.scalar(f"{out}/one", 1.0, dtype)], f"{out}/one_plus")
    half = w.emit("Mul", [one_plus, w.scalar(f"{out}/half", 0.5, dtype)], f"{out}/half_phi")
    return w.emit("Mul", [x, half], out)


def node_step(node: Node) -> tuple[Any, ...]:
    """The epilogue-style step of a standalone activation node."""
    a = node.attrs
    if node.op == "clip":
        return ("clip", a["min"], a["max"])
    if node.op == "gelu":
        return ("gelu_tanh",) if a["approximate"] == "tanh" else ("gelu",)
    if node.op == "leaky_relu":
        return ("leaky_relu", a["negative_slope"])
    if node.op == "elu":
        return ("elu", a["alpha"])
    return (node.op,)


def _activation(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    write_activation(w, node_step(node), acts[0], node.name, node.type.dtype)


def per_channel(w: OnnxWriter, name: str, rank: int) -> str:
    """A (C,) parameter reshaped to (C, 1, ...) so it broadcasts over an (N, C, ...) tensor."""
    array = w.graph.params[name]
    return w.constant(f"{name}.broadcast", array.reshape((-1,) + (1,) * (rank - 2)))


def _mul(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    w.emit("Mul", acts, node.name)  # ONNX broadcasts as NumPy does, which includes convc's one-sided form


def _channel_scale(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    w.emit("Mul", [acts[0], per_channel(w, params[0], len(node.type.shape))], node.name)


def _layer_norm(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    """Channels moved last, LayerNormalization over the last axis, moved back: the form torch.onnx.export
    writes for ConvNeXt (ONNX's LayerNormalization normalizes from its axis to the end, so it cannot take
    axis 1 of an NCHW tensor). Its epsilon is a float32 attribute: in float64 that rounding is ~1e-10."""
    rank = len(node.type.shape)
    last = [0, *range(2, rank), 1]
    back = [0, rank - 1, *range(1, rank - 1)]
    moved = w.emit("Transpose", acts, f"{node.name}/channels_last", perm=last)
    normed = w.emit("LayerNormalization", [moved, params[0], params[1]], f"{node.name}/normed", axis=-1,
                    epsilon=float(node.attrs["eps"]))
    w.emit("Transpose", [normed], node.name, perm=back)


def _channel_shuffle(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    """view (N, g, C/g, ...) -> swap axes 1 and 2 -> view (N, C, ...); 0 keeps the batch size as is."""
    shape = node.type.shape
    g = node.attrs["groups"]
    grouped = w.emit("Reshape", [acts[0], w.ints(f"{node.name}/grouped_shape", [0, g, shape[1] // g,
                                                                               *shape[2:]])],
                     f"{node.name}/grouped")
    perm = [0, 2, 1, *range(3, len(shape) + 1)]
    swapped = w.emit("Transpose", [grouped], f"{node.name}/swapped", perm=perm)
    w.emit("Reshape", [swapped, w.ints(f"{node.name}/shape", [0, *shape[1:]])], node.name)


def _slice(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    a = node.attrs
    w.emit("Slice", [acts[0], w.ints(f"{node.name}/starts", [a["start"]]),
                     w.ints(f"{node.name}/ends", [a["stop"]]), w.ints(f"{node.name}/axes", [a["axis"]])],
           node.name)


def adaptive_matrix(size: int, out: int) -> np.ndarray:
    """(size, out): column i averages input positions [floor(i size / out), ceil((i + 1) size / out))."""
    matrix = np.zeros((size, out))
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[lo:hi, i] = 1.0 / (hi - lo)
    return matrix


def _adaptive_avg_pool(w: OnnxWriter, node: Node, acts: list[str], params: list[str]) -> None:
    """GlobalAveragePool or AveragePool where the windows are that; otherwise, as the windows of an axis
    are a linear map, one MatMul per resized axis (moved last and back by a Transpose)."""
    sizes = w.graph.node(acts[0]).type.shape[2:]
    outs = tuple(node.attrs["output_size"])
    if all(o == 1 for o in outs):
        w.emit("GlobalAveragePool", acts, node.name)
        return
    if all(s % o == 0 for s, o in zip(sizes, outs)):
        window = [s // o for s, o in zip(sizes, outs)]
        w.emit("AveragePool", acts, node.name, kernel_shape=window, strides=window)
        return
    x, rank = acts[0], 2 + len(sizes)
    resized = [(axis, s, o) for axis, (s, o) in enumerate(zip(sizes, outs), start=2) if s != o]
    for i, (axis, s, o) in enumerate(resized):
        out = node.name if i == len(resized) - 1 else f"{node.name}/axis{axis}"
        matrix = w.constant(f"{node.name}/windows{axis}", adaptive_matrix(s, o).astype(node.type.dtype))
        if axis == rank - 1:
            x = w.emit("MatMul", [x, matrix], out)
            continue
        perm = list(range(rank))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        moved = w.emit("Transpose", [x], f"{out}/moved", perm=perm)
        x = w.emit("Transpose", [w.emit("MatMul", [moved, matrix], f"{out}/pooled")], out, perm=perm)


ZOO_WRITERS: dict[str, Writer] = {
    **{op: _activation for op in ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "clip", "hardswish",
                                  "hardsigmoid", "silu", "gelu")},
    "mul": _mul, "channel_scale": _channel_scale, "layer_norm": _layer_norm,
    "channel_shuffle": _channel_shuffle, "slice": _slice, "adaptive_avg_pool": _adaptive_avg_pool,
}
