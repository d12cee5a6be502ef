"""Convolution as one GEMM per group (im2col): the input's windows are gathered into a
[C/groups * prod(kernel), prod(out spatial)] column matrix per image and group, and multiplied by the
weight reshaped to [out_channels/groups, C/groups * prod(kernel)].

    out[n, g] = W[g] @ cols[n, g]          # (Og, Cg*K) @ (Cg*K, P) -> (Og, P), a BLAS GEMM

The gather is one strided copy of the windows of the zero-padded input, both in per-thread scratch
buffers reused across calls (no fresh padded input or column matrix to page in per call). A 1x1
stride-1 unpadded convolution needs no gather at all: the input reshapes for free.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convc.ir import Node
from convc.ops import CONV_OPS, input_scale_inputs

from convc.backends.numpy_ref import packed_gemm
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.scratch import scratch

def gather_columns(conv: ConvOperands) -> np.ndarray:
    """The (N, C, *kernel, *out_spatial) column array: cols[n, c, k..., o...] = x[n, c, o*stride +
    k*dilation - low_pad ...], 0 where that falls in the padding. Lives in scratch: consume it before
    the kernel returns.

    One strided copy of the windows of the zero-padded input (itself a scratch copy): measured against a
    copy per kernel offset straight from the unpadded input (1 thread), 0.7 ms against 1.2 for the 7x7
    stem of ResNet-50 and GoogLeNet, 0.05-0.18 ms against 0.19-0.32 for GoogLeNet's 5x5 convs (25 offsets
    of 5-7 NumPy calls each), and even within 10% on ResNet-50's 3x3 stride-2 convs."""
    xp = conv.padded_input()
    n, c = xp.shape[:2]
    spatial = xp.strides[2:]
    windows = as_strided(xp, shape=(n, c) + conv.kernel + conv.out_spatial,
                         strides=xp.strides[:2] + tuple(st * d for st, d in zip(spatial, conv.dilation))
                         + tuple(st * s for st, s in zip(spatial, conv.stride)), writeable=False)
    cols = scratch("im2col columns", windows.shape, xp.dtype)
    np.copyto(cols, windows)
    return cols


def needs_gather(conv: ConvOperands) -> bool:
    """False for a 1x1 stride-1 unpadded conv, whose input already is its column matrix."""
    attrs = conv.node.attrs
    return (any(k != 1 for k in conv.kernel) or any(s != 1 for s in conv.stride)
            or any(lo or hi for lo, hi in attrs["padding"]))


# A column matrix larger than this is gathered and multiplied block by block of output rows, each
# block's columns still in the cache when the GEMM reads them (ResNet-50's 7x7 stem: 7.4 MB of columns).
BLOCKED_ABOVE_BYTES = 4 << 20
BLOCK_BYTES = 1 << 20


def conv_im2col_blocked(conv: ConvOperands) -> np.ndarray:
    """An ungrouped conv2d as im2col, the gather and GEMM done per block of output rows of each image:
    out[n][:, rows] = W @ cols(rows): the same dot products as one GEMM over all positions."""
    xp = conv.padded_input()
    n, c = xp.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel, conv.stride, conv.dilation
    out_h, out_w = conv.out_spatial
    k = conv.weight.shape[0]
    patch = c * kh * kw
    weight = conv.weight.reshape(k, patch)
    out = np.empty(conv.out_shape, xp.dtype)
    rows = max(1, BLOCK_BYTES // (patch * out_w * xp.itemsize))
    s_c, s_h, s_w = xp.strides[1:]
    for image in range(n):
        flat_out = out[image].reshape(k, out_h * out_w)
        for top in range(0, out_h, rows):
            count = min(rows, out_h - top)
            windows = as_strided(xp[image, :, top * sh:], shape=(c, kh, kw, count, out_w),
                                 strides=(s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw), writeable=False)
            cols = scratch("im2col columns", windows.shape, xp.dtype)
            np.copyto(cols, windows)
            np.matmul(weight, cols.reshape(patch, count * out_w),
                      out=flat_out[:, top * out_w:(top + count) * out_w])
    return conv.finish(out)


def conv_packed_gemm(conv: ConvOperands, kernel: str, cols: np.ndarray) -> np.ndarray:
    """An ungrouped conv as a compiled GEMM with its weight packed once (packed_gemm.py), image by
    image: out[n] = epilogue(W @ cols[n] + bias), the bias and epilogue applied in the GEMM's tiles."""
    n = conv.x.shape[0]
    out_channels = conv.weight.shape[0]
    positions = math.prod(conv.out_spatial)
    out = np.empty(conv.out_shape, conv.x.dtype)
    fused = packed_gemm.fuses(out, conv.residuals)
    steps = tuple(conv.node.attrs["epilogue"]) if fused else ()
    columns = cols.reshape(n, -1, positions)
    for image in range(n):
        residuals = tuple(r[image].reshape(out_channels, positions) for r in conv.residuals) if fused else ()
        packed_gemm.gemm(kernel, conv.weight, columns[image], out[image].reshape(out_channels, positions),
                         conv.bias, steps, residuals)
    return out if fused else conv.finish(out, bias_added=True)


def conv_im2col(node: Node, args: list[Any]) -> np.ndarray:
    """conv1d/2d/3d with any padding, stride, dilation and groups, as batched GEMMs."""
    conv = ConvOperands.of(node, args)
    kernel = packed_gemm.route(conv.x.dtype, conv.weight.shape[0], math.prod(conv.out_spatial))
    # a squeeze-excitation scale may make the weight afresh each call (conv_operands.scaled_input): packed
    # per call, RegNet-Y 400MF ran 1.09x slower, so those convs keep BLAS
    if conv.groups == 1 and kernel is not None and not input_scale_inputs(node.attrs):
        if not needs_gather(conv):
            return conv_packed_gemm(conv, kernel, np.ascontiguousarray(conv.x))
        # gathered columns: the narrow kernel only (the wide one measured 1.03-1.17x BLAS on ResNet-50's
        # 3x3 stride-2 conv at 28x28)
        if kernel == "narrow" and conv.x.shape[1] * conv.kernel_size * math.prod(conv.out_spatial) \
                * conv.x.itemsize <= BLOCKED_ABOVE_BYTES:
            return conv_packed_gemm(conv, kernel, gather_columns(conv))
    if (conv.groups == 1 and conv.x.ndim == 4 and needs_gather(conv)
            and conv.x.shape[1] * conv.kernel_size * math.prod(conv.out_spatial) * conv.x.itemsize
            > BLOCKED_ABOVE_BYTES):
        return conv_im2col_blocked(conv)
    n, c = conv.x.shape[:2]
    g = conv.groups
    out_channels = conv.weight.shape[0]
    patch = (c // g) * conv.kernel_size
    positions = math.prod(conv.out_spatial)
    cols = gather_columns(conv) if needs_gather(conv) else conv.x
    weight = conv.weight.reshape(g, out_channels // g, patch)
    out = np.matmul(weight, cols.reshape(n, g, patch, positions))  # (G, Og, patch) @ (N, G, patch, P)
    return conv.finish(out.reshape(conv.out_shape))


KERNELS = {(op, "im2col"): conv_im2col for op in CONV_OPS}
