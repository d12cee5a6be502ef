"""Winograd convolution F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2015):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A      per (tile + 2)² input tile d and 3x3 filter g

Each 2D transform X -> Mᵀ X M runs as two 1-D passes (GEMMs with the small matrix Mᵀ over one tile
axis, then the other), and the sum over input channels happens in the transform domain as 16 (or 36)
independent [K x C] @ [C x tiles] GEMMs. The input is padded on the high side so any H, W is tiled
whole; the surplus outputs are cropped. Transforms run in the working dtype (float64 stays float64);
the filter transform G g Gᵀ is computed in float64 and cast once, at run time unless the node's
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

from convc.backends.numpy_ref import conv_winograd_jit, jit
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


def _input_transform(d: np.ndarray, b_t: np.ndarray, span: int) -> np.ndarray:
    """V = Bᵀ d B for every (channel, tile) column of d[(i, j), columns], as two 1-D passes: Bᵀ over i
    in one GEMM, then over j in `span` stacked GEMMs. 2 * span multiply-adds per element, not the
    span² of one kron(Bᵀ, Bᵀ) GEMM (measured on a 64 x 56 x 56 F(4x4) layer: 0.24 ms against 0.40)."""
    rest = d.size // (span * span)
    half = np.matmul(b_t, d.reshape(span, span * rest),
                     out=scratch("winograd input half transform", (span, span * rest), d.dtype))
    return np.matmul(b_t, half.reshape(span, span, rest),
                     out=scratch("winograd input transform", (span, span, rest), d.dtype))


def _output_transform(m: np.ndarray, a_t: np.ndarray, span: int, tile: int) -> np.ndarray:
    """Y = Aᵀ M A for every (channel, tile) column of m[(i, j), columns], as two 1-D passes: Aᵀ over i
    in one GEMM, then over j with the columns as rows, so the result is y[i, columns, j]: each output
    tile row's `tile` values lie next to each other, and the NCHW output is written from runs of
    tiles_w * tile contiguous values rather than gathered one value at a time (0.23 ms against 0.59 for
    the transform and permutation of a 64 x 56 x 56 F(4x4) layer)."""
    rest = m.size // (span * span)
    half = np.matmul(a_t, m.reshape(span, span * rest),
                     out=scratch("winograd output half transform", (tile, span * rest), m.dtype))
    return np.matmul(half.reshape(tile, span, rest).transpose(0, 2, 1), a_t.T,
                     out=scratch("winograd output transform", (tile, rest, tile), m.dtype))


def conv_winograd(node: Node, args: list[Any], tile: int) -> np.ndarray:
    """F(tile x tile, 3x3) for a conv2d with a 3x3 kernel, stride 1, dilation 1 and groups 1: the
    compiled transforms (conv_winograd_jit.py) where numba runs, else the NumPy passes below."""
    problem = winograd_problem(node, f"winograd_{tile}x{tile}")
    if problem:
        raise BackendError(problem)
    conv = ConvOperands.of(node, args)
    if jit.enabled_for(conv.x.dtype):
        return _conv_winograd_compiled(conv, tile)
    dtype = conv.x.dtype
    b_t, _, a_t = (np.asarray(matrix, dtype) for matrix in WINOGRAD_MATRICES[tile])
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
    v = _input_transform(d, b_t, span)
    m = np.matmul(_filters(conv, tile), v.reshape(span * span, c, columns),
                  out=scratch("winograd products", (span * span, k, columns), dtype))
    y = _output_transform(m, a_t, span, tile)
    # y[i, (k, n, th, tw), j] to NCHW: the copy adds the bias on the way (one pass over the output).
    blocks = y.reshape(tile, k, n, tiles_h, tiles_w, tile).transpose(2, 1, 3, 0, 4, 5)
    bias = conv.channel_bias(blocks.ndim)
    cropped = (tiles_h * tile, tiles_w * tile) != (out_h, out_w)
    out = np.empty((n, k, out_h, out_w), dtype)
    whole = scratch("winograd uncropped", blocks.shape, dtype) if cropped else out.reshape(blocks.shape)
    if bias is None:
        np.copyto(whole, blocks)
    else:
        np.add(blocks, bias, out=whole)
    if cropped:  # the tiles overhang the output: copy its part of them
        np.copyto(out, whole.reshape(n, k, tiles_h * tile, tiles_w * tile)[:, :, :out_h, :out_w])
    return conv.finish(out, bias_added=True)


def _filters(conv: ConvOperands, tile: int) -> np.ndarray:
    """U, (span², K, C): the weight itself when passes/winograd_weights.py transformed it at compile
    time (the node's `weight_transformed`), else transformed now."""
    if conv.node.attrs.get("weight_transformed"):
        return conv.weight
    return transform_filters(conv.weight, tile).astype(conv.x.dtype, copy=False)


def _conv_winograd_compiled(conv: ConvOperands, tile: int) -> np.ndarray:
    """The same convolution with each transform one compiled pass: no padded copy, no tile gather, no
    permutation; the bias and a leading ReLU of the epilogue applied as the output tiles are stored.
    Measured on ResNet-50's layers (1 thread, float32): see bench/NOTES.md, r50."""
    x = np.ascontiguousarray(conv.x)
    dtype = x.dtype
    consts = np.asarray(conv_winograd_jit.CONSTANTS, dtype)
    span = tile + 2
    n, c = x.shape[:2]
    k = conv.node.attrs["out_channels"]
    out_h, out_w = conv.out_spatial
    tiles_h, tiles_w = math.ceil(out_h / tile), math.ceil(out_w / tile)
    (pad_h, _), (pad_w, _) = conv.node.attrs["padding"]
    v = scratch("winograd input transform", (span, span, c, n, tiles_h, tiles_w), dtype)
    conv_winograd_jit.winograd_input_(x, tile, pad_h, pad_w, consts, v)
    columns = n * tiles_h * tiles_w
    m = np.matmul(_filters(conv, tile), v.reshape(span * span, c, columns),
                  out=scratch("winograd products", (span * span, k, columns), dtype))
    steps = tuple(conv.node.attrs["epilogue"])
    relu = bool(steps) and tuple(steps[0]) == ("relu",)
    bias = np.zeros(k, dtype) if conv.bias is None else np.ascontiguousarray(conv.bias, dtype)
    out = np.empty((n, k, out_h, out_w), dtype)
    conv_winograd_jit.winograd_output_(m.reshape(span, span, k, n, tiles_h, tiles_w), tile, bias, relu,
                                       consts, out)
    return conv.finish(out, bias_added=True, steps_done=1 if relu else 0)


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
