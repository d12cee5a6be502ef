"""Winograd convolution F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2015):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A      per (tile + 2)² input tile d and 3x3 filter g

Each 2D transform X -> Mᵀ X M is applied as one GEMM with kron(Mᵀ, Mᵀ) on tiles flattened row-major,
and the sum over input channels happens in the transform domain as 16 (or 36) independent
[K x C] @ [C x tiles] GEMMs. The input is padded on the high side so any H, W is tiled whole; the
surplus outputs are cropped. Transforms run in the working dtype (float64 stays float64); the filter
transform G g Gᵀ is computed in float64 and cast once, at run time unless the node's
`weight_transformed` says passes/winograd_weights.py already made it the weight.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convc.errors import BackendError
from convc.ir import Node
from convc.ops import CONV_OPS, fmt_dims
from convc.winograd import WINOGRAD_MATRICES, transform_filters

from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.scratch import scratch

TILE_OF_ALGO = {"winograd_2x2": 2, "winograd_4x4": 4}
REQUIREMENT = "a 3x3 kernel, stride 1, dilation 1, groups 1"


def winograd_problem(node: Node, algo: str) -> str | None:
    """Why `algo` cannot run `node` (a message naming the node), or None when it can."""
    if node.op != "conv2d":
        return f"node '{node.name}': {algo} needs a conv2d with {REQUIREMENT}; got {node.op}"
    attrs = node.attrs
    got = []
    if tuple(attrs["kernel"]) != (3, 3):
        got.append(f"kernel {fmt_dims(attrs['kernel'])}")
    if tuple(attrs["stride"]) != (1, 1):
        got.append(f"stride {fmt_dims(attrs['stride'])}")
    if tuple(attrs["dilation"]) != (1, 1):
        got.append(f"dilation {fmt_dims(attrs['dilation'])}")
    if attrs["groups"] != 1:
        got.append(f"groups {attrs['groups']}")
    return f"node '{node.name}': {algo} needs {REQUIREMENT}; got {', '.join(got)}" if got else None


def _transform(matrix: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """kron(M, M): applies X -> M X Mᵀ to row-major flattened tiles in one GEMM."""
    return np.ascontiguousarray(np.kron(matrix, matrix), dtype=dtype)


def conv_winograd(node: Node, args: list[Any], tile: int) -> np.ndarray:
    """F(tile x tile, 3x3) for a conv2d with a 3x3 kernel, stride 1, dilation 1 and groups 1."""
    problem = winograd_problem(node, f"winograd_{tile}x{tile}")
    if problem:
        raise BackendError(problem)
    conv = ConvOperands.of(node, args)
    dtype = conv.x.dtype
    b_t, _, a_t = WINOGRAD_MATRICES[tile]
    span = tile + 2  # input tile edge
    out_h, out_w = conv.out_spatial
    tiles_h, tiles_w = math.ceil(out_h / tile), math.ceil(out_w / tile)
    xp = conv.padded_input((tiles_h * tile - out_h, tiles_w * tile - out_w))
    n, c = xp.shape[:2]
    k = node.attrs["out_channels"]
    s_n, s_c, s_h, s_w = xp.strides
    # d[(i, j), (c, n, th, tw)] = xp[n, c, th*tile + i, tw*tile + j]: overlapping tiles, one gather.
    tiles = as_strided(xp, shape=(span, span, c, n, tiles_h, tiles_w),
                       strides=(s_h, s_w, s_c, s_n, tile * s_h, tile * s_w), writeable=False)
    columns = n * tiles_h * tiles_w
    # Every intermediate lives in this thread's scratch (consumed before returning); only the output is fresh.
    d = scratch("winograd tiles", tiles.shape, dtype)
    np.copyto(d, tiles)
    v = np.matmul(_transform(b_t, dtype), d.reshape(span * span, c * columns),
                  out=scratch("winograd input transform", (span * span, c * columns), dtype))
    if node.attrs.get("weight_transformed"):  # passes/winograd_weights.py did it at compile time
        u = conv.weight
    else:
        u = transform_filters(conv.weight, tile).astype(dtype, copy=False)
    # (span², K, C) @ (span², C, tiles) -> (span², K, tiles): the channel sums
    m = np.matmul(u, v.reshape(span * span, c, columns),
                  out=scratch("winograd products", (span * span, k, columns), dtype))
    y = np.matmul(_transform(a_t, dtype), m.reshape(span * span, k * columns),
                  out=scratch("winograd output transform", (tile * tile, k * columns), dtype))
    # Back to NCHW: the permutation copy adds the bias on the way (one pass over the output, not two).
    blocks = y.reshape(tile, tile, k, n, tiles_h, tiles_w).transpose(3, 2, 4, 0, 5, 1)
    if (tiles_h * tile, tiles_w * tile) != (out_h, out_w):  # crop from scratch into the fresh output
        whole = scratch("winograd uncropped", blocks.shape, dtype)
        np.copyto(whole, blocks)
        blocks = whole.reshape(n, k, tiles_h * tile, tiles_w * tile)[:, :, :out_h, :out_w]
    out = np.empty(blocks.shape, dtype)
    bias = conv.channel_bias(blocks.ndim)
    if bias is None:
        np.copyto(out, blocks)
    else:
        np.add(blocks, bias, out=out)
    return conv.finish(out.reshape(n, k, out_h, out_w), bias_added=True)


def conv_winograd_f2x3(node: Node, args: list[Any]) -> np.ndarray:
    return conv_winograd(node, args, 2)


def conv_winograd_f4x3(node: Node, args: list[Any]) -> np.ndarray:
    return conv_winograd(node, args, 4)


# Registered for every conv rank so that a conv1d/conv3d asking for Winograd gets the reason, not
# a bare "no kernel".
KERNELS = {
    **{(op, "winograd_2x2"): conv_winograd_f2x3 for op in CONV_OPS},
    **{(op, "winograd_4x4"): conv_winograd_f4x3 for op in CONV_OPS},
}
