"""The NumPy cost model's price of the compiled depthwise kernels (numba on, 1D/2D), by their parts:

- one filter per channel: the register-blocked kernel (backends/numpy_ref/conv_depthwise_simd.py);
- several filters per channel: conv_depthwise_jit.py's planes, up to five taps per pass over sums in L1.

    seconds = compiled_depthwise_seconds(shape, "float32", padded=58 * 58, stride=1)

`padded` is one plane's zero-padded input (elements), `stride` the layer's (ConvShape does not hold it:
conv_cost_numpy.inferred_stride). conv_cost_numpy.estimate_numpy calls it.
"""
from __future__ import annotations

import math

from convc.passes.conv_cost import ConvShape

# conv_depthwise_jit.py's planes, priced by its parts as measured on the shared 2-core EPYC (1 thread,
# float32, 2026-12-01, effnet: 23 MobileNet, EfficientNet and ConvNeXt layers, 3x3 to 7x7 kernels on
# 7x7 to 112x112 maps, fitted by hand): multiply-adds at about 19 G/s in float32 (vectors of half as
# many float64: half that), the padded copy at 0.25 ns an element (0.36 ns split into the phases of a
# stride), 10 ns per output row stored and 0.1 us per channel (the epilogue not counted: every
# algorithm pays it).
JIT_FMA_PER_S = {"float32": 19e9, "float64": 9.5e9}
JIT_FILL_S = 0.25e-9
JIT_STRIDED_FILL_S = 0.36e-9
JIT_ROW_S = 10e-9
JIT_CHANNEL_S = 0.1e-6
JIT_CALL_S = 10e-6  # the Python wrapper and numba's dispatch (ShuffleNet's smallest layers: 37-39 us)

# The register-blocked depthwise kernel (backends/numpy_ref/conv_depthwise_simd.py: one filter per
# channel, 1D/2D), priced by its parts, fitted (relative least squares, the copies' rates fixed) to 20
# MobileNet, EfficientNet, ConvNeXt and ShuffleNet layers (3x3 to 7x7 on 7x7 to 112x112 maps, best of
# 40, 1 thread, float32, shared 2-core EPYC, 2026-12-01 21:44 UTC, load average 3.7; all within 16%):
# tiles of vectors of wide positions (rows of Wq = the output's plus the kernel's overhang; tiles of 8
# vectors, then one of 4 and one of 1) at 2.17 G vector multiply-adds a second per tap (float64: as
# many vectors of half the lanes); a lone last vector is a chain of dependent multiply-adds, 1 ns a tap;
# the padded copy (0.1 ns an element, 0.15 split into a stride's phases), 0.21 ns per output stored, 21
# ns per plane, 17 us per call (with the wrapper).
SIMD_VECTOR_FMA_PER_S = 2.17e9
SIMD_CHAIN_S = 1.0e-9
SIMD_FILL_S = 0.1e-9
SIMD_STRIDED_FILL_S = 0.15e-9
SIMD_OUT_S = 0.21e-9
SIMD_PLANE_S = 21e-9
SIMD_CALL_S = 17e-6
SIMD_BLOCK = 4096  # conv_depthwise_simd.BLOCK_ELEMENTS
SIMD_TILE = 4  # conv_depthwise_simd.TILE_VECTORS


LANES = {"float32": 16, "float64": 8}


def depthwise_jit_seconds(shape: ConvShape, dtype: str, padded: int, stride: int) -> float:
    """conv_depthwise_jit.py's planes: per image and input channel the zero-padded copy, then per output
    channel every tap's multiply-add over the wide rows (output rows plus the kernel's overhang), the row
    stores and a fixed cost."""
    fma_rate = JIT_FMA_PER_S.get(dtype, JIT_FMA_PER_S["float32"])
    taps = math.prod(shape.kernel)
    out_h, out_w = (1,) + shape.out_spatial if len(shape.out_spatial) == 1 else shape.out_spatial
    wide = out_h * (out_w + shape.kernel[-1] - 1)
    return (shape.batch * shape.in_channels * padded * (JIT_STRIDED_FILL_S if stride > 1 else JIT_FILL_S)
            + shape.batch * shape.out_channels * (wide * taps / fma_rate + out_h * JIT_ROW_S + JIT_CHANNEL_S)
            + JIT_CALL_S)


def depthwise_simd_seconds(shape: ConvShape, dtype: str, padded: int, stride: int) -> float:
    """conv_depthwise_simd.py: per plane its padded copy, the tiles over each block of wide rows, the
    stored outputs, and the call."""
    lanes = LANES.get(dtype, 16)
    taps = math.prod(shape.kernel)
    out_h, out_w = (1,) + shape.out_spatial if len(shape.out_spatial) == 1 else shape.out_spatial
    grid_w = out_w + (shape.kernel[-1] - 1) // stride
    step = SIMD_TILE * lanes
    rows_per_block = max(1, min(out_h, (SIMD_BLOCK + grid_w + step - -(-grid_w // step) * step) // grid_w))
    vectors, chains = 0, 0
    for top in range(0, out_h, rows_per_block):
        left = -(-((min(rows_per_block, out_h - top) - 1) * grid_w + out_w) // lanes)
        eights = max(0, -(-(left - 5) // 8))  # tiles of 8 while six or more vectors are left
        left -= 8 * eights
        vectors += 8 * eights + 4 * (left > 1)
        chains += left in (1, 5)
    fill = SIMD_STRIDED_FILL_S if stride > 1 else SIMD_FILL_S
    per_plane = (taps * (vectors / SIMD_VECTOR_FMA_PER_S + chains * SIMD_CHAIN_S) + padded * fill
                 + out_h * out_w * SIMD_OUT_S + SIMD_PLANE_S)
    return shape.batch * shape.in_channels * per_plane + SIMD_CALL_S


def compiled_depthwise_seconds(shape: ConvShape, dtype: str, padded: int, stride: int) -> float:
    """The compiled kernel that runs `shape`: register-blocked with one filter per channel, else the
    planes."""
    if shape.out_channels == shape.in_channels:
        return depthwise_simd_seconds(shape, dtype, padded, stride)
    return depthwise_jit_seconds(shape, dtype, padded, stride)
