"""Schemas of the activations of mobile and modern networks (relu6 / hardtanh as clip, hardswish,
hardsigmoid, SiLU, GELU) and of the broadcasting elementwise multiply (squeeze-excitation, layer scale).

Each activation maps one-to-one onto an epilogue step (schema.EPILOGUE_ACTIVATIONS), so a conv or linear
can absorb it: clip -> ("clip", lo, hi), gelu {approximate="tanh"} -> ("gelu_tanh",), the others by name.
"""
from __future__ import annotations

from convc.ops.schema import Attrs, InvalidNode, OpSchema, TensorType, is_num, register_op

GELU_APPROXIMATIONS = ("none", "tanh")


def _same(ins: list[TensorType], a: Attrs) -> TensorType:
    return ins[0]


def _clip_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if not a["min"] <= a["max"]:
        raise InvalidNode(f"min {a['min']} must not exceed max {a['max']}")
    return ins[0]


ACTIVATION = frozenset({"activation"})
register_op(OpSchema("clip", {"min": is_num, "max": is_num}, _clip_infer, tags=ACTIVATION,
                     doc="min(max(x, min), max): relu6 is clip(0, 6), hardtanh clip(-1, 1)"))
register_op(OpSchema("hardswish", {}, _same, tags=ACTIVATION, doc="x * clip(x + 3, 0, 6) / 6"))
register_op(OpSchema("hardsigmoid", {}, _same, tags=ACTIVATION, doc="clip(x + 3, 0, 6) / 6"))
register_op(OpSchema("silu", {}, _same, tags=ACTIVATION, doc="x * sigmoid(x) (swish)"))
register_op(OpSchema("gelu", {"approximate": lambda v: v in GELU_APPROXIMATIONS}, _same, tags=ACTIVATION,
                     doc="x * Phi(x) with Phi the normal CDF (exact, via erf) or its tanh approximation"))


def broadcast_shape(a: TensorType, b: TensorType) -> tuple[int, ...]:
    """NumPy broadcasting of two shapes of one rank, where the result is one of the two shapes."""
    if a.rank != b.rank:
        raise InvalidNode(f"operands {a} and {b} have different ranks; reshape one so they match")
    if a.dtype != b.dtype:
        raise InvalidNode(f"operands have different dtypes {a} and {b}")
    out = []
    for i, (p, q) in enumerate(zip(a.shape, b.shape)):
        if p != q and 1 not in (p, q):
            raise InvalidNode(f"operands {a} and {b} do not broadcast (axis {i}: {p} vs {q})")
        out.append(max(p, q))
    if tuple(out) not in (a.shape, b.shape):
        raise InvalidNode(f"operands {a} and {b} would both grow by broadcasting; convc's mul broadcasts "
                          f"one operand to the other's shape")
    return tuple(out)


def _mul_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    return ins[0].with_shape(broadcast_shape(ins[0], ins[1]))


register_op(OpSchema("mul", {}, _mul_infer, num_inputs=lambda a: 2,
                     macs=lambda ins, out, a: out.numel,
                     doc="elementwise product; one operand may broadcast (size-1 axes) to the other, as "
                         "a squeeze-excitation scale (N, C, 1, 1) does over (N, C, H, W)"))
