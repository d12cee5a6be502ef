"""Convolution as one GEMM per group (im2col): the input's windows are gathered into a
[C/groups * prod(kernel), prod(out spatial)] column matrix per image and group, and multiplied by the
weight reshaped to [out_channels/groups, C/groups * prod(kernel)].

    out[n, g] = W[g] @ cols[n, g]          # (Og, Cg*K) @ (Cg*K, P) -> (Og, P), a BLAS GEMM

The gather writes each kernel offset's valid taps straight from the unpadded input and zeroes the taps
that fall in the padding, into a per-thread scratch buffer reused across calls: no padded copy of the
input and no fresh column matrix per call. A 1x1 stride-1 unpadded convolution needs no gather at all:
the input reshapes for free.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convc.ir import Node
from convc.ops import CONV_OPS

from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.scratch import scratch
from convc.backends.numpy_ref.windows import valid_outputs


def gather_columns(conv: ConvOperands) -> np.ndarray:
    """The (N, C, *kernel, *out_spatial) column array: cols[n, c, k..., o...] = x[n, c, o*stride +
    k*dilation - low_pad ...], 0 where that falls in the padding. Lives in scratch: consume it before
    the kernel returns."""
    x = conv.x
    n, c = x.shape[:2]
    out_spatial = conv.out_spatial
    cols = scratch("im2col columns", (n, c) + conv.kernel + out_spatial, x.dtype)
    pads = [lo for lo, _ in conv.node.attrs["padding"]]
    everything = (slice(None), slice(None))
    for offset in np.ndindex(*conv.kernel):
        ranges = [valid_outputs(size, out, k * d, s, p) for size, out, k, d, s, p in
                  zip(x.shape[2:], out_spatial, offset, conv.dilation, conv.stride, pads)]
        tap = cols[everything + offset]
        if any(lo == hi for lo, hi in ranges):
            tap.fill(0)
            continue
        source = tuple(slice(k * d - p + lo * s, k * d - p + (hi - 1) * s + 1, s) for (lo, hi), k, d, s, p
                       in zip(ranges, offset, conv.dilation, conv.stride, pads))
        tap[everything + tuple(slice(lo, hi) for lo, hi in ranges)] = x[everything + source]
        for axis, ((lo, hi), out) in enumerate(zip(ranges, out_spatial)):
            before = (slice(None),) * axis
            if lo > 0:
                tap[everything + before + (slice(0, lo),)] = 0
            if hi < out:
                tap[everything + before + (slice(hi, out),)] = 0
    return cols


def needs_gather(conv: ConvOperands) -> bool:
    """False for a 1x1 stride-1 unpadded conv, whose input already is its column matrix."""
    attrs = conv.node.attrs
    return (any(k != 1 for k in conv.kernel) or any(s != 1 for s in conv.stride)
            or any(lo or hi for lo, hi in attrs["padding"]))


def conv_im2col(node: Node, args: list[Any]) -> np.ndarray:
    """conv1d/2d/3d with any padding, stride, dilation and groups, as batched GEMMs."""
    conv = ConvOperands.of(node, args)
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
