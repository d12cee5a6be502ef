"""The NumPy cost model's price of the register-blocked grouped 3x3 kernel
(backends/numpy_ref/conv_grouped_simd.py: groups of 8 or more channels, numba on), by its parts.

    seconds = grouped_simd_seconds(shape, "float32", stride=2)    # shape: a grouped 3x3 ConvShape

Per image: the phase-split copy of each input plane (priced for strided layers), the multiply-adds of
every block of R = 4 output channels over all Cg * 9 steps on each vector of wide positions, each output
row's crop into NCHW, the call. conv_cost_numpy.direct_seconds calls it.
"""
from __future__ import annotations

from convc.passes.conv_cost import ConvShape

# Fitted (relative least squares) to the kernel alone with a ReLU on the 82 distinct grouped layers of
# RegNet-X/Y 400MF-32GF and ResNeXt-50/101 with groups of 8-64 channels (1 thread, float32, batch 1,
# shared 2-core Zen 4 EPYC, 2026-12-01 21:30 UTC, load average 1.3; bench/NOTES.md, grouped; 74 within
# 10%, 80 within 20%, worst 0.75 on two stride-2 layers; the dense stride-1 layout came after, priced by
# its positions alone): multiply-adds over the computed lanes (the plane's positions at stride 1 up to
# 32 columns, else wide rows of out_w + 2 // stride columns; whole vectors; output channels rounded up
# to blocks of 4) at 54 G/s,
# 28 ns per output row cropped into NCHW, 0.45 ns per element of a strided layer's phase-split copy
# (stride 1's plain copy fitted to nothing beside the rest), 22 us per call. float64 (half the lanes): 23 G/s,
# from 6 RegNet layers at 22:30 (1.27-9.39 ms; 27 G/s, half of float32's, priced them 0.69-0.93 of that).
GROUPED_SIMD_FMA_PER_S = {"float32": 54e9, "float64": 23e9}
GROUPED_SIMD_ROW_S = 28e-9
GROUPED_SIMD_STRIDED_FILL_S = 0.45e-9
GROUPED_SIMD_CALL_S = 22e-6
GROUPED_SIMD_MIN_CHANNELS = 8  # conv_grouped_simd.MIN_GROUP_CHANNELS
GROUPED_SIMD_R = 4  # conv_grouped_layout.R: output channels per block
GROUPED_SIMD_DENSE_UP_TO = 32  # conv_grouped_layout.DENSE_UP_TO
LANES = {"float32": 16, "float64": 8}


def grouped_simd_applies(shape: ConvShape) -> bool:
    """What conv_grouped_simd.applicable runs: 2D, 3x3 kernels, groups of 8 or more input channels."""
    return (shape.kernel == (3, 3) and shape.groups > 1
            and shape.in_channels // shape.groups >= GROUPED_SIMD_MIN_CHANNELS)


def grouped_simd_seconds(shape: ConvShape, dtype: str, stride: int, padded: int) -> float:
    """conv_grouped_simd.py on a grouped 3x3 `shape` with `stride` (both axes) and `padded` elements of
    zero-padded input (the phase-split copy), in `dtype`."""
    out_h, out_w = shape.out_spatial
    # stride 1 up to 32 columns: positions dense over the plane; else wide rows with padding columns
    grid_w = out_w if stride == 1 and out_w <= GROUPED_SIMD_DENSE_UP_TO else out_w + 2 // stride
    lanes = LANES.get(dtype, 16)
    run = -(-((out_h - 1) * grid_w + out_w) // lanes) * lanes
    in_group, out_group = shape.in_channels // shape.groups, shape.out_channels // shape.groups
    blocks = shape.groups * -(-out_group // GROUPED_SIMD_R)
    fma = blocks * GROUPED_SIMD_R * in_group * 9 * run
    rate = GROUPED_SIMD_FMA_PER_S.get(dtype, GROUPED_SIMD_FMA_PER_S["float32"])
    fill = 0.0 if stride == 1 else padded * GROUPED_SIMD_STRIDED_FILL_S
    rows = shape.out_channels * out_h
    return shape.batch * (fma / rate + rows * GROUPED_SIMD_ROW_S) + fill + GROUPED_SIMD_CALL_S
