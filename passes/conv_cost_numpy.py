"""The NumPy backend's conv cost model: conv shape + measured CPU profile -> seconds, kernel by kernel.

    profile = numpy_profile("float32")                       # passes/cpu_profile.py
    seconds = estimate_numpy(ConvShape.of(node, g), "winograd_4x4", profile)

Each algorithm is priced as the operations its kernel in backends/numpy_ref really performs, each at
the rate the profile measured for that kind of operation:

- im2col: the zero-padded copy of the input, the window gather into a column matrix (none for a 1x1
  stride-1 unpadded conv), one GEMM per image and group;
- direct: the padded copy, then per kernel offset a strided slice copy, a GEMM with the small inner
  dimension C/groups, and an accumulation into the output;
- depthwise: the flat padded copy, two calls over the output grid per tap, the crop;
- Winograd F(m x m, 3x3): the padded copy, the overlapping-tile gather, the input transform GEMM,
  alpha^2 GEMMs of [K x C] @ [C x tiles] (the smaller `tiles` is, the lower the GEMM rate), the output
  transform GEMM, the permutation of output tiles back to NCHW, the crop when the tiles overhang, and
  the filter transform only when the weights are not transformed at compile time.

The fused epilogue costs every algorithm the same and is left out: the model ranks algorithms.
"""
from __future__ import annotations

import math

from convc.passes.conv_cost import WINOGRAD_TILE, ConvShape
from convc.passes.cpu_profile import NumpyProfile

ITEMSIZE = {"float32": 4, "float64": 8}


def gemm_seconds(m: int, n: int, k: int, profile: NumpyProfile, size: int, stack: int = 1) -> float:
    """`stack` GEMMs of (m x k) @ (k x n) in one np.matmul: the compute at the rate measured for the
    smallest dimension, or the operands' memory traffic, whichever is slower, plus call overheads."""
    macs = stack * m * n * k
    nbytes = stack * (m * k + k * n + m * n) * size
    compute = macs / profile.gemm_rate(min(m, n, k))
    return (max(compute, nbytes / profile.copy_bytes_per_s) + profile.call_overhead_s
            + (stack - 1) * profile.slice_overhead_s)


def pad_seconds(shape: ConvShape, padded_elements: int, profile: NumpyProfile, size: int) -> float:
    """np.pad: reads the input, writes the padded copy (free when there is no padding)."""
    x = shape.elements()[0]
    if padded_elements == x:
        return 0.0
    return (x + padded_elements) * size / profile.copy_bytes_per_s + profile.call_overhead_s


def padded_elements(shape: ConvShape, extra: tuple[int, ...] = ()) -> int:
    pads = shape.padding or ((0, 0),) * len(shape.in_spatial)
    spatial = [s + lo + hi + (extra[i] if extra else 0)
               for i, (s, (lo, hi)) in enumerate(zip(shape.in_spatial, pads))]
    return shape.batch * shape.in_channels * math.prod(spatial)


def im2col_seconds(shape: ConvShape, profile: NumpyProfile, size: int) -> float:
    g = shape.groups
    positions = math.prod(shape.out_spatial)
    patch = shape.in_channels // g * math.prod(shape.kernel)
    total = pad_seconds(shape, padded_elements(shape), profile, size)
    if not shape.unit_window:
        cols = shape.batch * g * patch * positions
        total += 2 * cols * size / profile.gather_bytes_per_s + profile.call_overhead_s
    return total + gemm_seconds(shape.out_channels // g, positions, patch, profile, size, shape.batch * g)


def direct_seconds(shape: ConvShape, profile: NumpyProfile, size: int) -> float:
    g = shape.groups
    positions = math.prod(shape.out_spatial)
    y = shape.elements()[2]
    sliced = shape.batch * shape.in_channels * positions
    per_offset = (2 * sliced * size / profile.gather_bytes_per_s
                  + gemm_seconds(shape.out_channels // g, positions, shape.in_channels // g, profile, size,
                                 shape.batch * g)
                  + 3 * y * size / profile.copy_bytes_per_s + 3 * profile.call_overhead_s)
    zeros = y * size / profile.copy_bytes_per_s
    return (pad_seconds(shape, padded_elements(shape), profile, size) + zeros
            + math.prod(shape.kernel) * per_offset)


def winograd_seconds(shape: ConvShape, m: int, profile: NumpyProfile, size: int,
                     filters_pretransformed: bool) -> float:
    alpha = m + 2
    a2 = alpha * alpha
    out_h, out_w = shape.out_spatial
    th, tw = math.ceil(out_h / m), math.ceil(out_w / m)
    tiles = shape.batch * th * tw
    c, k = shape.in_channels, shape.out_channels
    y = shape.elements()[2]
    calls = profile.call_overhead_s
    total = pad_seconds(shape, padded_elements(shape, (th * m - out_h, tw * m - out_w)), profile, size)
    total += 2 * a2 * c * tiles * size / profile.tile_gather_bytes_per_s + calls
    total += c * tiles * profile.transform_s_per_column[f"in{m}"] + calls
    if not filters_pretransformed:
        total += gemm_seconds(a2, k * c, 9, profile, size) + 2 * k * c * 9 * size / profile.copy_bytes_per_s
    total += gemm_seconds(k, tiles, c, profile, size, stack=a2)
    total += k * tiles * profile.transform_s_per_column[f"out{m}"] + calls
    total += 2 * k * tiles * m * m * size / profile.scatter_bytes_per_s + calls
    if (th * m, tw * m) != (out_h, out_w):
        total += 2 * y * size / profile.copy_bytes_per_s + calls
    return total


def depthwise_seconds(shape: ConvShape, profile: NumpyProfile, size: int) -> float:
    """backends/numpy_ref/conv_depthwise.py: one zero-padded flat copy of the input, then per tap a
    multiply into a scratch array and an add (about four passes over the output grid, which spans the
    padded width at stride s: s times the output's positions), then the crop back to the output."""
    pads = shape.padding or ((0, 0),) * len(shape.in_spatial)
    padded = [s + lo + hi for s, (lo, hi) in zip(shape.in_spatial, pads)]
    grid = shape.batch * shape.out_channels * shape.out_spatial[0] * math.prod(padded[1:])
    y = shape.elements()[2]
    copy = (shape.elements()[0] + padded_elements(shape)) * size / profile.copy_bytes_per_s
    per_tap = 4 * grid * size / profile.copy_bytes_per_s + 2 * profile.call_overhead_s
    return copy + math.prod(shape.kernel) * per_tap + 2 * y * size / profile.copy_bytes_per_s


def estimate_numpy(shape: ConvShape, algo: str, profile: NumpyProfile,
                   filters_pretransformed: bool = True) -> float:
    """Modelled seconds of the NumPy backend's `algo` kernel on `shape`, in the profile's dtype."""
    size = ITEMSIZE.get(profile.dtype, 4)
    if algo == "direct":
        return direct_seconds(shape, profile, size)
    if algo in WINOGRAD_TILE:
        return winograd_seconds(shape, WINOGRAD_TILE[algo], profile, size, filters_pretransformed)
    if algo == "depthwise":
        return depthwise_seconds(shape, profile, size)
    # im2col, and any algorithm a plugin adds that the model does not know: priced as one GEMM.
    return im2col_seconds(shape, profile, size)
