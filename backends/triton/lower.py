"""Lowering of convolutions and linear layers: each node becomes a list of bound kernel launches over the
planned memory.

The backend looks lowerings up by (op, algo) in its table (this module's LOWERINGS and lower_misc's); a
conv node's `algo` picks its kernel (None -> `resolve_conv_algo`). Packed parameters are cached per module,
so batch-size variants share them.

    launches = backend.lower(node, NodeContext(graph=g, dtype="float16", node=node, plan=plan, packed={},
                                               device="cuda"))
"""
from __future__ import annotations

from typing import Any

import torch

from convc.backend import LoweringContext, LoweringTable, registrar
from convc.backends.triton.autotune import default_config
from convc.backends.triton.common import TORCH_DTYPES, cdiv
from convc.backends.triton.conv_depthwise import conv_depthwise_launch
from convc.backends.triton.conv_direct import conv_direct_launch
from convc.backends.triton.conv_im2col import conv_im2col_launches, im2col_columns
from convc.backends.triton.conv_implicit_gemm import (
    conv_implicit_gemm_launches,
    gather_k,
    split_k_for,
    tile_sizes,
)
from convc.backends.triton.conv_winograd import ALGO_TILE, WinogradPlan, check_winograd, conv_winograd_launches
from convc.backends.triton.epilogue import encode_epilogue
from convc.backends.triton.gemm import gemm_launch
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.context import NodeContext
from convc.backends.triton.launch import Launch, View
from convc.backends.triton.packing import channels_last_columns, pack_conv_direct, pack_conv_gemm, pack_linear
from convc.backends.triton.split_k import split_k_factor
from convc.errors import BackendError
from convc.ir import Graph, Node
from convc.ops import CONV_OPS

LOWERINGS: LoweringTable[NodeContext, list[Launch]] = {}
lowering = registrar(LOWERINGS)


def default_conv_algo(node: Node, ctx: LoweringContext) -> str | None:
    """The backend's `default_algo`: for a conv node whose attrs leave the algorithm open."""
    return resolve_conv_algo(node, ctx.graph) if node.op in CONV_OPS else None


def resolve_conv_algo(node: Node, graph: Graph) -> str:
    """The node's algo, or for None: depthwise where groups == input channels, direct for narrow grouped
    layers (a tensor-core K block would be mostly empty), implicit GEMM otherwise (an RGB input gathers K
    flat: conv_implicit_gemm.py)."""
    algo = node.attrs.get("algo")
    if algo is not None:
        return algo
    x = graph.node(node.inputs[0]).type
    if 1 < x.shape[1] == node.attrs["groups"] and node.attrs["out_channels"] % x.shape[1] == 0:
        return "depthwise"
    c_per_group = x.shape[1] // node.attrs["groups"]
    if c_per_group < 16 and node.attrs["groups"] > 1:
        return "direct"
    return "implicit_gemm"


def _geometry(node: Node, ctx: NodeContext) -> ConvGeometry:
    return ConvGeometry.of(node, ctx.graph.node(node.inputs[0]).type)


def _config(ctx: NodeContext, family: str, sizes: tuple[int, int, int]) -> dict[str, Any]:
    """The untuned configuration for (M, N, K); the tuner may replace it later."""
    return default_config(family, sizes, ctx.dtype)  # (the implicit GEMM's own: implicit_gemm_schedule)


def unit_window(geo: ConvGeometry) -> bool:
    """A 1x1 (x1) kernel with stride 1 and no padding: the conv is a plain GEMM on the input matrix."""
    return geo.kernel_volume == 1 and geo.stride == (1, 1, 1) and geo.pad_lo == (0, 0, 0) and \
        (geo.od, geo.oh, geo.ow) == (geo.d, geo.h, geo.w)


def gemm_schedule(geo: ConvGeometry, dtype: str) -> tuple[dict[str, Any], int]:
    """(untuned tile configuration, split-K factor) of a unit-window conv run as a GEMM."""
    cfg = default_config("gemm", (geo.out_pixels, geo.o_per_group, geo.c_per_group), dtype)
    tiles = cdiv(geo.out_pixels, cfg["BLOCK_M"]) * cdiv(geo.o_per_group, cfg["BLOCK_N"]) * geo.groups
    return cfg, split_k_factor(tiles, cdiv(geo.c_per_group, cfg["BLOCK_K"]), cfg, dtype,
                               ragged=geo.c_per_group % cfg["BLOCK_K"] != 0)


def _partials(ctx: NodeContext, split_k: int, rows: int, cols: int) -> View | None:
    """The planned fp32 partial-sum buffer of a split-K conv (split_k x rows x cols), or None."""
    if split_k == 1:
        return None
    scratch = ctx.plan.scratch[ctx.node.name][0]
    return View(scratch.storage, scratch.offset, split_k * rows, cols, cols)


def no_input_scale(node: Node) -> None:
    """Raises for a conv with attrs["input_scale"] that the chosen lowering cannot apply."""
    if node.attrs.get("input_scale"):
        raise BackendError(f"node '{node.name}': an input scale (a fused squeeze-excitation multiply) needs a 1x1 "
                           f"stride-1 unpadded ungrouped conv run as a GEMM (algo implicit_gemm or im2col); "
                           f"got algo={node.attrs.get('algo')!r}, kernel {node.attrs['kernel']}")


def _as_gemm(node: Node, ctx: NodeContext, geo: ConvGeometry) -> list[Launch]:
    """A unit-window conv as the batched GEMM (one batch entry per group) reading the input in place; an
    input scale (attrs["input_scale"]) multiplies the A tiles as they are loaded."""
    scale = ctx.input_scale()
    if scale is not None and geo.groups != 1:
        no_input_scale(node)
    w = ctx.pack("gemm", lambda: pack_conv_gemm(ctx.param("weight"), geo.groups, ctx.torch_dtype, ctx.device))
    codes, params = encode_epilogue(node)
    x = ctx.x
    a = View(x.storage, x.offset, x.rows, geo.c_per_group, x.ld)
    cfg, split_k = gemm_schedule(geo, ctx.dtype)
    return gemm_launch(node.name, a, w.reshape(geo.groups, geo.c_per_group, geo.o_per_group), ctx.bias(), ctx.out,
                       ctx.residuals(), codes, params, ctx.dot_mode, cfg, batches=geo.groups,
                       stride_ag=geo.c_per_group, split_k=split_k,
                       partials=_partials(ctx, split_k, geo.out_pixels, geo.o), a_scale=scale)


def implicit_gemm_schedule(geo: ConvGeometry, dtype: str) -> tuple[dict[str, Any], int]:
    """(untuned tile configuration, split-K factor) of an implicit-GEMM conv."""
    cfg = default_config("conv_implicit_gemm", tile_sizes(geo), dtype, gather_k(geo))
    return cfg, split_k_for(geo, cfg, dtype)


@lowering(CONV_OPS, "implicit_gemm")
def lower_conv_implicit_gemm(node: Node, ctx: NodeContext) -> list[Launch]:
    geo = _geometry(node, ctx)
    if unit_window(geo):
        return _as_gemm(node, ctx, geo)
    no_input_scale(node)
    w = ctx.pack("gemm", lambda: pack_conv_gemm(ctx.param("weight"), geo.groups, ctx.torch_dtype, ctx.device))
    codes, params = encode_epilogue(node)
    cfg, split_k = implicit_gemm_schedule(geo, ctx.dtype)
    return conv_implicit_gemm_launches(node.name, geo, ctx.x, w, ctx.bias(), ctx.out, ctx.residuals(), codes,
                                       params, ctx.dot_mode, cfg, split_k,
                                       _partials(ctx, split_k, geo.out_pixels, geo.o))


@lowering(CONV_OPS, "direct")
def lower_conv_direct(node: Node, ctx: NodeContext) -> list[Launch]:
    no_input_scale(node)
    geo = _geometry(node, ctx)
    w = ctx.pack("direct", lambda: pack_conv_direct(ctx.param("weight"), ctx.torch_dtype, ctx.device))
    codes, params = encode_epilogue(node)
    cfg = _config(ctx, "conv_direct", (geo.out_pixels, geo.o, geo.c_per_group))
    return [conv_direct_launch(node.name, geo, ctx.x, w, ctx.bias(), ctx.out, ctx.residuals(), codes, params, cfg)]


@lowering(CONV_OPS, "depthwise")
def lower_conv_depthwise(node: Node, ctx: NodeContext) -> list[Launch]:
    no_input_scale(node)
    geo = _geometry(node, ctx)
    w = ctx.pack("direct", lambda: pack_conv_direct(ctx.param("weight"), ctx.torch_dtype, ctx.device))
    codes, params = encode_epilogue(node)
    return [conv_depthwise_launch(node.name, geo, ctx.x, w, ctx.bias(), ctx.out, ctx.residuals(), codes,
                                  params)]


@lowering(CONV_OPS, "im2col")
def lower_conv_im2col(node: Node, ctx: NodeContext) -> list[Launch]:
    geo = _geometry(node, ctx)
    if unit_window(geo):  # the input already is the column matrix: no copy
        return _as_gemm(node, ctx, geo)
    no_input_scale(node)
    w = ctx.pack("gemm", lambda: pack_conv_gemm(ctx.param("weight"), geo.groups, ctx.torch_dtype, ctx.device))
    codes, params = encode_epilogue(node)
    width = im2col_columns(geo)
    scratch = ctx.plan.scratch[node.name][0]
    cols = View(scratch.storage, 0, geo.out_pixels, width, width)
    cfg = _config(ctx, "gemm", (geo.out_pixels, geo.o_per_group, width // geo.groups))
    return conv_im2col_launches(node.name, geo, ctx.x, cols, w, ctx.bias(), ctx.out, ctx.residuals(), codes,
                                params, ctx.dot_mode, cfg)


def _lower_winograd(node: Node, ctx: NodeContext) -> list[Launch]:
    no_input_scale(node)
    geo = _geometry(node, ctx)
    check_winograd(node, geo)
    plan = WinogradPlan(geo, ALGO_TILE[node.attrs["algo"]])
    u = ctx.pack(node.attrs["algo"], lambda: plan.transform_filters(ctx.param("weight"), ctx.torch_dtype,
                                                                     ctx.device))
    codes, params = encode_epilogue(node)
    v, m = ctx.plan.scratch[node.name]
    cfg = _config(ctx, "gemm", (plan.tiles, geo.o, geo.c))
    return conv_winograd_launches(node.name, plan, ctx.x, v, m, u, ctx.bias(), ctx.out, ctx.residuals(),
                                  codes, params, ctx.dot_mode, cfg)


for _algo in ALGO_TILE:
    lowering(CONV_OPS, _algo)(_lower_winograd)


@lowering("linear")
def lower_linear(node: Node, ctx: NodeContext) -> list[Launch]:
    # An input that is a flatten left in (spatial, channel) order reads weight columns permuted to match.
    source = ctx.plan.channels_last_features.get(node.inputs[0])

    def packed() -> torch.Tensor:
        weight = ctx.param("weight")
        weight = weight if source is None else channels_last_columns(weight, source)
        return pack_linear(weight, ctx.torch_dtype, ctx.device).unsqueeze(0)

    w = ctx.pack("gemm" if source is None else f"gemm_channels_last{source}", packed)
    codes, params = encode_epilogue(node)
    x = ctx.x
    cfg = _config(ctx, "gemm", (x.rows, node.attrs["out_features"], x.cols))
    return gemm_launch(node.name, x, w, ctx.bias(), ctx.out, ctx.residuals(), codes, params, ctx.dot_mode, cfg)


def scratch_requests(node: Node, graph: Graph, dtype: str) -> list[tuple[int, torch.dtype]]:
    """Scratch memory a node's lowering needs, so the planner can place it with the activations."""
    if node.op not in CONV_OPS:
        return []
    algo = resolve_conv_algo(node, graph)
    geo = ConvGeometry.of(node, graph.node(node.inputs[0]).type)
    if unit_window(geo) and algo in ("im2col", "implicit_gemm") or algo == "implicit_gemm":
        schedule = gemm_schedule if unit_window(geo) else implicit_gemm_schedule
        split_k = schedule(geo, dtype)[1]  # > 1: fp32 partial sums
        return [(split_k * geo.out_pixels * geo.o, torch.float32)] if split_k > 1 else []
    if algo == "im2col":
        return [(geo.out_pixels * im2col_columns(geo), TORCH_DTYPES[dtype])]
    if algo in ALGO_TILE:
        check_winograd(node, geo)
        plan = WinogradPlan(geo, ALGO_TILE[algo])
        return [(plan.scratch_v, TORCH_DTYPES[dtype]), (plan.scratch_m, torch.float32)]
    return []
