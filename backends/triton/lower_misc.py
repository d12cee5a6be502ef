"""Lowerings of everything but convolution and linear: pools, normalisation, elementwise ops, softmax,
maxout, layout-changing flatten and the concat operands that could not be written in place."""
from __future__ import annotations

import math

from convc.backend import LoweringTable, registrar
from convc.backends.triton.context import NodeContext
from convc.backends.triton.elementwise import elementwise_launch
from convc.backends.triton.epilogue import encode_steps
from convc.backends.triton.geometry import PoolGeometry, spatial3
from convc.backends.triton.launch import Launch
from convc.backends.triton.layout import nchw_flat_strides, shape5, strided_copy_launch, strides_of_view
from convc.backends.triton.lrn import lrn_launch
from convc.backends.triton.maxout import maxout_launch
from convc.backends.triton.memory import ALIAS_OPS
from convc.backends.triton.packing import batch_norm_scale_shift, channels_last_bias, pack_vector
from convc.backends.triton.pooling import global_pool_launch, window_pool_launch
from convc.backends.triton.softmax import softmax_launch
from convc.ir import Node

POOL_OPS = tuple(f"{kind}_pool{nd}d" for kind in ("max", "avg") for nd in (1, 2, 3))
LOWERINGS: LoweringTable[NodeContext, list[Launch]] = {}
lowering = registrar(LOWERINGS)


@lowering(POOL_OPS)
def lower_window_pool(node: Node, ctx: NodeContext) -> list[Launch]:
    geo = PoolGeometry.of(node, ctx.graph.node(node.inputs[0]).type)
    return [window_pool_launch(node.name, geo, ctx.x, ctx.out, is_max=node.op.startswith("max"),
                               count_include_pad=node.attrs.get("count_include_pad", True))]


@lowering(("global_avg_pool", "global_max_pool"))
def lower_global_pool(node: Node, ctx: NodeContext) -> list[Launch]:
    x = ctx.graph.node(node.inputs[0]).type
    return [global_pool_launch(node.name, ctx.x, ctx.out, positions=math.prod(x.shape[2:]),
                               is_max=node.op == "global_max_pool")]


@lowering("batch_norm")
def lower_batch_norm(node: Node, ctx: NodeContext) -> list[Launch]:
    def folded() -> tuple[object, object]:
        return batch_norm_scale_shift(ctx.param("weight"), ctx.param("bias"), ctx.param("running_mean"),
                                      ctx.param("running_var"), node.attrs["eps"])

    scale = ctx.pack("scale", lambda: pack_vector(folded()[0], ctx.device))
    shift = ctx.pack("shift", lambda: pack_vector(folded()[1], ctx.device))
    return [elementwise_launch(node.name, ctx.x, ctx.out, scale=scale, shift=shift)]


@lowering("scale_shift")
def lower_scale_shift(node: Node, ctx: NodeContext) -> list[Launch]:
    scale = ctx.pack("scale", lambda: pack_vector(ctx.param("weight"), ctx.device))
    shift = ctx.pack("shift", lambda: pack_vector(ctx.param("bias"), ctx.device))
    return [elementwise_launch(node.name, ctx.x, ctx.out, scale=scale, shift=shift)]


@lowering("bias_add")
def lower_bias_add(node: Node, ctx: NodeContext) -> list[Launch]:
    bias = ctx.pack("bias", lambda: pack_vector(channels_last_bias(ctx.param("bias")), ctx.device))
    positions = math.prod(node.type.shape[2:])
    return [elementwise_launch(node.name, ctx.x, ctx.out, pixel_bias=bias, positions=positions)]


_ACTIVATION_PARAM = {"leaky_relu": "negative_slope", "elu": "alpha"}


@lowering(("relu", "leaky_relu", "sigmoid", "tanh", "elu"))
def lower_activation(node: Node, ctx: NodeContext) -> list[Launch]:
    step = (node.op,) + ((node.attrs[_ACTIVATION_PARAM[node.op]],) if node.op in _ACTIVATION_PARAM else ())
    codes, params = encode_steps((step,), f"node '{node.name}'")
    return [elementwise_launch(node.name, ctx.x, ctx.out, codes=codes, params=params)]


@lowering("add")
def lower_add(node: Node, ctx: NodeContext) -> list[Launch]:
    codes, params = encode_steps((("add",),), f"node '{node.name}'")
    return [elementwise_launch(node.name, ctx.x, ctx.out, residuals=ctx.residuals(), codes=codes, params=params)]


@lowering("softmax")
def lower_softmax(node: Node, ctx: NodeContext) -> list[Launch]:
    return [softmax_launch(node.name, node.type, node.attrs["axis"], ctx.x, ctx.out)]


@lowering("lrn")
def lower_lrn(node: Node, ctx: NodeContext) -> list[Launch]:
    a = node.attrs
    return [lrn_launch(node.name, ctx.x, ctx.out, size=a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])]


@lowering("maxout")
def lower_maxout(node: Node, ctx: NodeContext) -> list[Launch]:
    return [maxout_launch(node.name, ctx.x, ctx.out, k=node.attrs["k"])]


@lowering(ALIAS_OPS)
def lower_alias(node: Node, ctx: NodeContext) -> list[Launch]:
    """dropout / identity: the memory plan makes the output a view of the input, so no kernel runs."""
    return []


@lowering("flatten")
def lower_flatten(node: Node, ctx: NodeContext) -> list[Launch]:
    """Reached only when a flatten of channels-last data must be in NCHW feature order: it is a graph output
    or read by something other than a linear layer (see memory.channels_last_flatten; others are views)."""
    src = ctx.graph.node(node.inputs[0]).type
    sp = spatial3(src.shape)
    return [strided_copy_launch(node.name, shape5(src.shape), ctx.x.ptr, strides_of_view(ctx.x, sp),
                                ctx.out.ptr, nchw_flat_strides(ctx.out, sp), out=ctx.out)]


@lowering("concat")
def lower_concat(node: Node, ctx: NodeContext) -> list[Launch]:
    """Copies the operands the planner could not place in their slice of the output."""
    axis = node.attrs["axis"]
    out_type = node.type
    axis5 = axis if axis < 2 else axis + 5 - out_type.rank
    out_strides = strides_of_view(ctx.out, spatial3(out_type.shape))
    operands = ctx.graph.activation_inputs(node)
    starts = [0]
    for v in operands:
        starts.append(starts[-1] + ctx.graph.node(v).type.shape[axis])
    launches = []
    for i in ctx.plan.concat_copies.get(node.name, []):
        src_type = ctx.graph.node(operands[i]).type
        src = ctx.plan.views[operands[i]]
        dst = ctx.out.storage[ctx.out.offset + starts[i] * out_strides[axis5]:]
        launches.append(strided_copy_launch(node.name, shape5(src_type.shape), src.ptr,
                                            strides_of_view(src, spatial3(src_type.shape)), dst, out_strides,
                                            out=ctx.out))
    return launches
