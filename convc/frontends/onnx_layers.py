"""ONNX ops of mobile and modern CNNs -> convc layers: Mul, Clip, HardSwish, HardSigmoid, Gelu,
LayerNormalization, and the Transpose / Reshape / MatMul / Add / Split / Slice forms that ConvNeXt's
channels-last blocks and ShuffleNet's channel shuffle export to (followed with convc.frontends.lazy_layout,
as from_torch does). onnx_ops merges HANDLERS into its own and asks `layout_rule` first in its Add,
MatMul and Reshape.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.dsl import Value
from convc.frontends.building import (
    FrontendError,
    bias_add_constant,
    channel_scale_constant,
    resolve_target_shape,
)
from convc.frontends.lazy_layout import ChannelGroups, Permuted, join_channels, permuted, split_channels
from convc.frontends.onnx_context import Handler, OnnxCtx

RUNTIME = (Value, Permuted, ChannelGroups)


def _unary(build: str, **kw: Any) -> Handler:
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = ins[0]
        if isinstance(x, Permuted):
            return [Permuted(getattr(ctx.net, build)(x.base, name=ctx.name, **kw))]
        return [getattr(ctx.net, build)(ctx.value(x, "X"), name=ctx.name, **kw)]
    return handler


def hard_sigmoid(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if abs(alpha - 1 / 6) > 1e-6 or beta != 0.5:
        raise FrontendError(f"HardSigmoid with alpha={alpha}, beta={beta} is not supported; convc's "
                            f"hardsigmoid is torch's (alpha=1/6, beta=0.5)")
    return _unary("hardsigmoid")(ctx, ins, attrs)


def gelu(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    return _unary("gelu", approximate=str(attrs.get("approximate", "none")))(ctx, ins, attrs)


def clip(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """Bounds from attributes before opset 11, from optional inputs after."""
    lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    if len(ins) > 1 and ins[1] is not None:
        lo = ctx.const(ins[1], "min")
    if len(ins) > 2 and ins[2] is not None:
        hi = ctx.const(ins[2], "max")
    return _unary("clip", min=float(lo), max=float(hi))(ctx, ins[:1], attrs)


def mul(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    a, b = ins
    if not isinstance(a, RUNTIME):
        a, b = b, a
    if isinstance(a, Permuted) and isinstance(b, Permuted):
        return [Permuted(ctx.net.mul(a.base, b.base, name=ctx.name))]
    x = ctx.value(a, "A")
    if isinstance(b, Value):
        return [ctx.net.mul(x, b, name=ctx.name)]
    index = 1 if ins[1] is b else 0
    return [channel_scale_constant(ctx.net, x, ctx.const(b, "B"), ctx.name, ctx.key(index), "Mul")]


def add(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any] | None:
    """On a channels-last view: a bias over its channels, or the sum of two views."""
    views = [v for v in ins if isinstance(v, Permuted)]
    if not views:
        return None
    if len(views) == 2:
        return [Permuted(ctx.net.add(views[0].base, views[1].base, name=ctx.name))]
    base = views[0].base
    other = ins[1] if ins[0] is views[0] else ins[0]
    c = ctx.const(other, "the other operand")
    nd = len(base.shape) - 2
    per_channel = np.asarray(c).reshape(-1, *(1,) * nd) if c.size == base.shape[1] else c
    return [Permuted(bias_add_constant(ctx.net, base, per_channel, ctx.name, None, "Add"))]


def matmul(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any] | None:
    """A constant (C, O) matrix applied to a channels-last view's channels is a 1x1 convolution."""
    if not isinstance(ins[0], Permuted):
        return None
    base = ins[0].base
    w = ctx.const(ins[1], "B")
    if w.ndim != 2 or w.shape[0] != base.shape[1]:
        raise FrontendError(f"MatMul of a channels-last {ins[0].shape} by a {w.shape} matrix is not "
                            f"supported")
    nd = len(base.shape) - 2
    y = ctx.net.conv(base, int(w.shape[1]), (1,) * nd, bias=False, name=ctx.name, ndim=nd)
    ctx.bind(y, "weight", np.ascontiguousarray(w.T).reshape(w.shape[1], w.shape[0], *(1,) * nd), None)
    return [Permuted(y)]


def layer_normalization(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ins[0]
    base = x.base if isinstance(x, Permuted) else ctx.value(x, "X")
    rank = len(base.shape)
    axis = int(attrs.get("axis", -1)) % rank
    if not (axis == rank - 1 and (isinstance(x, Permuted) or rank == 2)):
        raise FrontendError(f"LayerNormalization over axes {axis}.. of {x.shape} is not supported; convc "
                            f"normalizes over channels (a channels-last tensor's last axis)")
    y = ctx.net.layer_norm(base, eps=float(attrs.get("epsilon", 1e-5)), name=ctx.name)
    channels = base.shape[1]
    scale = ctx.const(ins[1], "Scale")
    bias = ctx.const(ins[2], "B") if len(ins) > 2 and ins[2] is not None else np.zeros(channels, scale.dtype)
    ctx.bind(y, "weight", scale, ctx.key(1))
    ctx.bind(y, "bias", bias, ctx.key(2) if len(ins) > 2 else None)
    return [Permuted(y) if isinstance(x, Permuted) else y]


def transpose(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ins[0]
    if not isinstance(x, RUNTIME):
        ctx.value(x, "data")
    perm = tuple(int(p) for p in attrs.get("perm", range(len(x.shape) - 1, -1, -1)))
    result = permuted(x, perm)
    if result is None:
        raise FrontendError(f"Transpose {perm} of {x.shape} is not supported; convc follows a transpose to "
                            f"channels-last and back (ConvNeXt) and a swap of channel groups (ShuffleNet)")
    return [result]


def reshape(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any] | None:
    x = ins[0]
    shape = ctx.const(ins[1], "shape").tolist()
    zero_copies = not attrs.get("allowzero", 0)
    if isinstance(x, ChannelGroups):
        target = resolve_target_shape(x.shape, shape, zero_copies=zero_copies, where="Reshape")
        return [join_channels(ctx.net, x, target, ctx.name)]
    if isinstance(x, Value):
        groups = split_channels(x, resolve_target_shape(x.shape, shape, zero_copies=zero_copies,
                                                        where="Reshape"))
        if groups is not None:
            return [groups]
    return None


def _slices(ctx: OnnxCtx, x: Value, axis: int, sizes: list[int]) -> list[Value]:
    out, start = [], 0
    for i, size in enumerate(sizes):
        name = f"{ctx.name}.{i}" if i else ctx.name
        out.append(ctx.net.slice(x, start, start + size, axis=axis, name=name))
        start += size
    return out


def split(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ctx.value(ins[0], "input")
    axis = int(attrs.get("axis", 0)) % len(x.shape)
    size = x.shape[axis]
    if len(ins) > 1 and ins[1] is not None:
        sizes = [int(s) for s in ctx.const(ins[1], "split")]
    elif "split" in attrs:
        sizes = [int(s) for s in attrs["split"]]
    else:
        parts = int(attrs.get("num_outputs", len(ctx.output_names)))
        step = -(-size // parts)
        sizes = [min(step, size - i) for i in range(0, size, step)]
    return _slices(ctx, x, axis, sizes)


def slice_(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    x = ctx.value(ins[0], "data")
    starts, ends = ctx.const(ins[1], "starts").tolist(), ctx.const(ins[2], "ends").tolist()
    given = [len(ins) > i and ins[i] is not None for i in (3, 4)]
    axes = ctx.const(ins[3], "axes").tolist() if given[0] else list(range(len(starts)))
    steps = ctx.const(ins[4], "steps").tolist() if given[1] else [1] * len(starts)
    y = x
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = int(axis) % len(x.shape)
        begin, stop, stride = slice(int(start), int(end), int(step)).indices(x.shape[axis])
        if stride != 1:
            raise FrontendError(f"Slice with step {step} is not supported; convc slices with step 1")
        if (begin, stop) != (0, x.shape[axis]):
            y = ctx.net.slice(y, begin, stop, axis=axis, name=ctx.name if y is x else f"{ctx.name}.{axis}")
    return [y]


HANDLERS: dict[str, Handler] = {
    "HardSwish": _unary("hardswish"), "HardSigmoid": hard_sigmoid, "Gelu": gelu, "Clip": clip, "Mul": mul,
    "LayerNormalization": layer_normalization, "Transpose": transpose, "Split": split, "Slice": slice_,
    "Relu": _unary("relu"), "Sigmoid": _unary("sigmoid"),
}
# Rules for Add, MatMul and Reshape on the lazy layouts; None means the op's usual handler applies.
LAYOUT_RULES = {"Add": add, "MatMul": matmul, "Reshape": reshape}


def layout_rule(op: str, ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any] | None:
    return LAYOUT_RULES[op](ctx, ins, attrs)
WEIGHT_OPERANDS: dict[str, Any] = {
    "Clip": (1, 2), "LayerNormalization": (1, 2), "Split": (1,), "Slice": (1, 2, 3, 4),
}
