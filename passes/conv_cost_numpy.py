"""The NumPy backend's conv cost model: conv shape + measured CPU profile -> seconds, kernel by kernel.

    profile = numpy_profile("float32")                       # passes/cpu_profile.py
    seconds = estimate_numpy(ConvShape.of(node, g), "winograd_4x4", profile)

Each algorithm is priced as the operations its kernel in backends/numpy_ref really performs, each at
the rate the profile measured for that kind of operation:

- im2col: the zero-padded copy of the input, the window gather into a column matrix (none for a 1x1
  stride-1 unpadded conv), one GEMM per image and group;
- direct: the padded copy, then per kernel offset a strided slice copy, a GEMM with the small inner
  dimension C/groups, and an accumulation into the output;
- depthwise: a padded copy, per tap a multiply and an add over cache-sized blocks, the crop;
- Winograd F(m x m, 3x3): the padded copy, the overlapping-tile gather, the input transform GEMM,
  alpha^2 GEMMs of [K x C] @ [C x tiles] (the smaller `tiles` is, the lower the GEMM rate), the output
  transform GEMM, the permutation of output tiles back to NCHW, the crop when the tiles overhang, and
  the filter transform only when the weights are not transformed at compile time; where the profile
  says the compiled transforms run (numba), each side is one pass priced per column and per channel
  plane instead of the copies and transform GEMMs.

The fused epilogue costs every algorithm the same and is left out: the model ranks algorithms.
"""
from __future__ import annotations

import math

from convc.passes.conv_cost import WINOGRAD_TILE, ConvShape
from convc.passes.cpu_profile import NumpyProfile

ITEMSIZE = {"float32": 4, "float64": 8}


def gemm_seconds(m: int, n: int, k: int, profile: NumpyProfile, size: int, stack: int = 1) -> float:
    """`stack` GEMMs of (m x k) @ (k x n) in one np.matmul, the (m x k) operands being weights: the
    compute at the rate measured for the smallest dimension, or the operands' memory traffic, whichever
    is slower, plus reading the weights from memory (cold in a forward; BLAS packs them before it
    computes, so the two add) and call overheads. The weight read is what makes Winograd F(4x4) lose
    to F(2x2) on 14x14 maps: 36 filter matrices at N = 16 tiles against 16 at N = 49."""
    macs = stack * m * n * k
    nbytes = stack * (m * k + k * n + m * n) * size
    compute = macs / profile.gemm_rate(min(m, n, k))
    return (max(compute, nbytes / profile.copy_bytes_per_s) + stack * m * k * size / profile.weight_bytes_per_s
            + profile.call_overhead_s + (stack - 1) * profile.slice_overhead_s)


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
    rates = profile.transform_s_per_column
    filters = 0.0 if filters_pretransformed else (gemm_seconds(a2, k * c, 9, profile, size)
                                                  + 2 * k * c * 9 * size / profile.copy_bytes_per_s)
    if f"compiled_in{m}" in rates:  # one-pass transforms (backends/numpy_ref/conv_winograd_jit.py) run
        planes_in, planes_out = shape.batch * c, shape.batch * k
        return (c * tiles * rates[f"compiled_in{m}"] + planes_in * rates[f"compiled_in{m}_plane"] + filters
                + gemm_seconds(k, tiles, c, profile, size, stack=a2)
                + k * tiles * rates[f"compiled_out{m}"] + planes_out * rates[f"compiled_out{m}_plane"]
                + 2 * calls)
    total = pad_seconds(shape, padded_elements(shape, (th * m - out_h, tw * m - out_w)), profile, size)
    total += 2 * a2 * c * tiles * size / profile.tile_gather_bytes_per_s + calls
    total += c * tiles * profile.transform_s_per_column[f"in{m}"] + calls
    total += filters + gemm_seconds(k, tiles, c, profile, size, stack=a2)
    total += k * tiles * profile.transform_s_per_column[f"out{m}"] + calls
    total += 2 * k * tiles * m * m * size / profile.scatter_bytes_per_s + calls
    if (th * m, tw * m) != (out_h, out_w):
        total += 2 * y * size / profile.copy_bytes_per_s + calls
    return total


# Elementwise passes over a block that stays in the L2 cache run this many times faster than the
# profile's copy rate (an np.pad of a 64 x 56 x 56 map). Measured (1 thread, float32, 2026-12-01,
# shared EPYC): a multiply and an add over 144 x 3136 and 960 x 49 float32 moved 91-104 GB/s where the
# profile's copies moved 27 GB/s.
IN_CACHE_SPEEDUP = 3.5
DEPTHWISE_BLOCK_BYTES = 1 << 20  # backends/numpy_ref/conv_depthwise*.py BLOCK_BYTES


def depthwise_seconds(shape: ConvShape, profile: NumpyProfile, size: int) -> float:
    """backends/numpy_ref/conv_depthwise.py: per block of channels (or of output rows, channels-last)
    a multiply and an add per tap over the block (five element moves, in the L2 cache), after one
    padded copy of the input (channel-major: its polyphase split; channels-last: a transposing copy,
    priced at the gather rate) and before the crop or transposed store. The kernel picks the layout
    per map size; the model takes the cheaper of the two."""
    taps = math.prod(shape.kernel)
    y = shape.elements()[2]
    x = shape.elements()[0]
    channels = shape.batch * shape.out_channels
    copy, gather = profile.copy_bytes_per_s, profile.gather_bytes_per_s
    in_cache = copy * IN_CACHE_SPEEDUP
    calls = (2 * taps + 6) * profile.call_overhead_s
    # channel-major: per tap a run over each channel's phase grid of out + (k - 1) // stride positions
    # per axis (out + k - 1 here: the shape does not say the stride; exact at stride 1)
    grid = math.prod(o + k - 1 for o, k in zip(shape.out_spatial, shape.kernel))
    phased = padded_elements(shape)
    blocks = -(-channels * grid * size // DEPTHWISE_BLOCK_BYTES)
    channel_major = ((x + phased) * size / copy + taps * 5 * channels * grid * size / in_cache
                     + 2 * y * size / copy + blocks * calls)
    if len(shape.in_spatial) > 2 or shape.out_channels != shape.in_channels:
        return channel_major
    padded = padded_elements(shape)
    rows_blocks = -(-y * size // DEPTHWISE_BLOCK_BYTES)
    channels_last = ((x + padded) * size / gather + taps * 5 * y * size / in_cache
                     + 2 * y * size / gather + rows_blocks * calls)
    return min(channel_major, channels_last)


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
