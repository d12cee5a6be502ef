"""Lowerings of the ops of mobile and modern CNNs: the activations that are also epilogue steps (clip,
hardswish, hardsigmoid, silu, gelu), the broadcasting multiply, layer norm over channels, channel
shuffle and slices (strided copies), and adaptive average pooling."""
from __future__ import annotations

import math

from convc.backend import LoweringTable, registrar
from convc.backends.triton.adaptive_pool import adaptive_avg_pool_launch
from convc.backends.triton.context import NodeContext
from convc.backends.triton.elementwise import elementwise_launch
from convc.backends.triton.epilogue import encode_steps
from convc.backends.triton.geometry import spatial3
from convc.backends.triton.launch import Launch
from convc.backends.triton.layer_norm import layer_norm_launch
from convc.backends.triton.layout import shape5, strided_copy_launch, strides_of_view
from convc.backends.triton.multiply import multiply_launch
from convc.backends.triton.packing import pack_vector
from convc.errors import BackendError
from convc.ir import Node
from convc.types import TensorType

LOWERINGS: LoweringTable[NodeContext, list[Launch]] = {}
lowering = registrar(LOWERINGS)


def activation_step(node: Node) -> tuple:
    """The epilogue step that computes the activation node `node` (as passes/fuse_epilogue fuses it)."""
    if node.op == "clip":
        return ("clip", node.attrs["min"], node.attrs["max"])
    if node.op == "gelu":
        return ("gelu_tanh",) if node.attrs["approximate"] == "tanh" else ("gelu",)
    return (node.op,)


@lowering(("clip", "hardswish", "hardsigmoid", "silu", "gelu"))
def lower_modern_activation(node: Node, ctx: NodeContext) -> list[Launch]:
    codes, params = encode_steps((activation_step(node),), f"node '{node.name}'")
    return [elementwise_launch(node.name, ctx.x, ctx.out, codes=codes, params=params)]


def broadcast_reads(node: str, full: TensorType, small: TensorType) -> tuple[int, int]:
    """(rows of `full` per row of `small`, column step) for the broadcasts the multiply kernel reads."""
    if small.shape == full.shape:
        return 1, 1
    n, c = full.shape[0], full.shape[1] if full.rank >= 2 else 1
    positions = math.prod(full.shape[2:])
    spatial_ones = all(d == 1 for d in small.shape[2:])
    channels = small.shape[1] if small.rank >= 2 else 1
    col_step = 1 if channels == c else 0
    if spatial_ones and small.shape[0] == n:
        return positions, col_step
    if spatial_ones and small.shape[0] == 1:
        return n * positions, col_step
    if small.shape[0] == n and small.shape[2:] == full.shape[2:] and channels == 1:
        return 1, 0
    raise BackendError(f"node '{node}': the triton backend multiplies {full} by {small}; it broadcasts an "
                       f"operand of the same shape, one value per example and channel, per channel, or per "
                       f"pixel only")


@lowering("mul")
def lower_mul(node: Node, ctx: NodeContext) -> list[Launch]:
    a, b = (ctx.graph.node(v) for v in node.inputs[:2])
    full, small = (a, b) if a.type.shape == node.type.shape else (b, a)
    rows_per_s, col_step = broadcast_reads(node.name, full.type, small.type)
    views = ctx.plan.views
    return [multiply_launch(node.name, views[full.name], views[small.name], ctx.out, rows_per_s=rows_per_s,
                            col_step=col_step)]


@lowering("layer_norm")
def lower_layer_norm(node: Node, ctx: NodeContext) -> list[Launch]:
    weight = ctx.pack("weight", lambda: pack_vector(ctx.param("weight"), ctx.device))
    bias = ctx.pack("bias", lambda: pack_vector(ctx.param("bias"), ctx.device))
    return [layer_norm_launch(node.name, ctx.x, ctx.out, weight, bias, eps=node.attrs["eps"])]


@lowering("channel_scale")
def lower_channel_scale(node: Node, ctx: NodeContext) -> list[Launch]:
    scale = ctx.pack("scale", lambda: pack_vector(ctx.param("weight"), ctx.device))
    return [elementwise_launch(node.name, ctx.x, ctx.out, scale=scale)]


@lowering("channel_shuffle")
def lower_channel_shuffle(node: Node, ctx: NodeContext) -> list[Launch]:
    """A strided copy over (N, groups, C / groups, 1, positions): input channel i * (C / g) + j goes to
    output channel j * g + i."""
    t = node.type
    g = node.attrs["groups"]
    n, c, positions = t.shape[0], t.shape[1], math.prod(t.shape[2:])
    x, y = ctx.x, ctx.out
    src = (positions * x.ld, c // g, 1, 0, x.ld)
    dst = (positions * y.ld, 1, g, 0, y.ld)
    return [strided_copy_launch(node.name, (n, g, c // g, 1, positions), x.ptr, src, y.ptr, dst, out=y)]


@lowering("slice")
def lower_slice(node: Node, ctx: NodeContext) -> list[Launch]:
    a = node.attrs
    src_type = ctx.graph.node(node.inputs[0]).type
    axis5 = a["axis"] if a["axis"] < 2 else a["axis"] + 5 - src_type.rank
    src_strides = strides_of_view(ctx.x, spatial3(src_type.shape))
    start = ctx.x.storage[ctx.x.offset + a["start"] * src_strides[axis5]:]
    dst_strides = strides_of_view(ctx.out, spatial3(node.type.shape))
    return [strided_copy_launch(node.name, shape5(node.type.shape), start, src_strides, ctx.out.ptr,
                                dst_strides, out=ctx.out)]


@lowering("adaptive_avg_pool")
def lower_adaptive_avg_pool(node: Node, ctx: NodeContext) -> list[Launch]:
    x = ctx.graph.node(node.inputs[0]).type
    return [adaptive_avg_pool_launch(node.name, ctx.x, ctx.out, n=x.shape[0], spatial=spatial3(x.shape),
                                     out_spatial=spatial3(node.type.shape))]
