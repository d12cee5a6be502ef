"""Direct convolution: a sum over kernel offsets of shifted-slice contractions.

    for each offset k:  out[n, g] += W[g, :, :, k] @ xp[n, g, :, k*dilation :: stride]

One batched GEMM per kernel offset (over images and groups); no column matrix is ever built, so it
needs the least memory of the algorithms. Where numba runs, a 2D grouped conv with 3x3 kernels and two
or more input channels per group (RegNet, ResNeXt) runs compiled instead: its GEMMs would be only Cg
wide. Groups of 8 or more channels run conv_grouped_simd.py's register-blocked kernel, narrower ones
conv_grouped_jit.py's loop.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convc.ir import Node
from convc.ops import CONV_OPS

from convc.backends.numpy_ref import conv_grouped_jit, conv_grouped_simd, jit
from convc.backends.numpy_ref.conv_operands import ConvOperands


def conv_direct(node: Node, args: list[Any]) -> np.ndarray:
    """conv1d/2d/3d with any padding, stride, dilation and groups, offset by offset."""
    conv = ConvOperands.of(node, args)
    if jit.enabled_for(np.result_type(conv.x, conv.weight)):
        if conv_grouped_simd.applicable(conv):
            return conv_grouped_simd.conv_grouped_simd(conv)
        if conv_grouped_jit.applicable(conv):
            return conv_grouped_jit.conv_grouped_jit(conv)
    xp = conv.padded_input()
    n, c = xp.shape[:2]
    g = conv.groups
    out_channels = conv.weight.shape[0]
    positions = math.prod(conv.out_spatial)
    grouped = xp.reshape((n, g, c // g) + xp.shape[2:])
    weight = conv.weight.reshape((g, out_channels // g, c // g) + conv.kernel)
    # One contiguous (G, Og, Cg) matrix per offset: NumPy hands only dense operands to BLAS.
    per_offset = np.ascontiguousarray(np.moveaxis(weight, tuple(range(3, weight.ndim)),
                                                  tuple(range(len(conv.kernel)))))
    dtype = np.result_type(conv.x, conv.weight)
    out = np.zeros((n, g, out_channels // g, positions), dtype)
    for offset in np.ndindex(*conv.kernel):
        window = tuple(slice(k * d, k * d + st * (o - 1) + 1, st)
                       for k, d, st, o in zip(offset, conv.dilation, conv.stride, conv.out_spatial))
        shifted = grouped[(slice(None),) * 3 + window].reshape(n, g, c // g, positions)
        out += np.matmul(per_offset[offset], shifted)
    return conv.finish(out.reshape(conv.out_shape))


KERNELS = {(op, "direct"): conv_direct for op in CONV_OPS}
