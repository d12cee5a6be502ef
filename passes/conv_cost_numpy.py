"""The NumPy backend's conv cost model: conv shape + measured CPU profile -> seconds, kernel by kernel.

    profile = numpy_profile("float32")                       # passes/cpu_profile.py
    seconds = estimate_numpy(ConvShape.of(node, g), "winograd_4x4", profile)

Each algorithm is priced as the operations its kernel in backends/numpy_ref really performs, each at
the rate the profile measured for that kind of operation:

- im2col: the zero-padded copy of the input, the window gather into a column matrix (none for a 1x1
  stride-1 unpadded conv), one GEMM per image and group; compiled (numba on, float32, ungrouped) the
  GEMM of an output of 28 to 64 positions runs the packed-weight narrow kernel, PACKED_NARROW_FACTOR
  of the BLAS GEMM's time (the packed wide kernel on larger maps measured at BLAS's speed: priced so);
- direct: the padded copy, then per kernel offset a strided slice copy, a GEMM with the small inner
  dimension C/groups, and an accumulation into the output; compiled (numba on) for a 2D grouped conv
  with 3x3 kernels and two or more channels per group: the phase-split copy of each input plane, nine
  multiply-adds per input channel over wide rows of output, the row stores, a cost per pass (groups of
  8 or more channels: the register-blocked kernel, priced in conv_cost_grouped.py);
- depthwise: compiled (numba on): per channel its padded copy, every tap's multiply-add (one filter per
  channel: register tiles of vectors, a rate per vector), the output stores, at the rates measured for
  that kernel; NumPy (CONVC_NUMBA=0): a padded copy, per tap a
  multiply and an add over cache-sized blocks, the crop;
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

from convc.device_profiles import compiled_cpu_kernels
from convc.passes.conv_cost import WINOGRAD_TILE, ConvShape
from convc.passes.conv_cost_depthwise import compiled_depthwise_seconds
from convc.passes.conv_cost_grouped import grouped_simd_applies, grouped_simd_seconds
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
    weights_s = stack * m * k * size / profile.weight_bytes_per_s
    return (max(compute, nbytes / profile.copy_bytes_per_s) + weights_s
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


# NumPy's strided copy pays about this much per contiguous run it copies (one output row of one tap
# and channel): measured (1 thread, float32, 2026-12-01, shared EPYC) 2.7-4.6 ns a run beyond the
# profile's gather rate on depthwise-shaped gathers of 7x7 to 56x56 maps (960 channels at 7x7: 286 us
# where the rate alone gives 62), 5-8 ns a run on the grouped gathers of RegNet-X 800MF. Charged to
# grouped convs (whose gathers are all channels, few rows each), as the larger of the two. A stride-2
# gather (every other input column) moved 18-22 GB/s there where stride 1 moved 38-52: 0.4 of the rate.
GATHER_RUN_S = 6e-9
STRIDED_GATHER_EFFICIENCY = 0.4


def inferred_stride(shape: ConvShape) -> int:
    """The stride along the last axis, which ConvShape does not hold: an input about s times the output."""
    out_w = shape.out_spatial[-1]
    return max(1, round(shape.in_spatial[-1] / out_w)) if out_w > 1 else 1


# The compiled narrow GEMM with its weight packed once (backends/numpy_ref/gemm_narrow_jit.py, float32,
# ungrouped, at most PACKED_NARROW_COLUMNS output positions) took this fraction of OpenBLAS's time on the
# 7x7 layers of ResNet-50 and RegNet-X 3.2GF (1 thread, 2026-12-01, shared EPYC, weights cold, fused
# epilogue included): 0.73-0.95 per layer, median 0.85.
PACKED_NARROW_FACTOR = 0.85
PACKED_NARROW_COLUMNS = (28, 64)  # the positions it takes, if its 7-wide tiles are >= 7/8 full


def packed_narrow(positions: int) -> bool:
    """Whether an output of `positions` runs the narrow kernel (backends/numpy_ref/packed_gemm.route)."""
    low, high = PACKED_NARROW_COLUMNS
    return low <= positions <= high and -positions % 7 * 8 <= -(-positions // 7) * 7


def im2col_seconds(shape: ConvShape, profile: NumpyProfile, size: int, compiled: bool = False) -> float:
    g = shape.groups
    positions = math.prod(shape.out_spatial)
    patch = shape.in_channels // g * math.prod(shape.kernel)
    total = pad_seconds(shape, padded_elements(shape), profile, size)
    if not shape.unit_window:
        cols = shape.batch * g * patch * positions
        gather = 2 * cols * size / profile.gather_bytes_per_s
        if g > 1:
            rows = math.prod(shape.out_spatial[:-1])
            runs = shape.batch * shape.in_channels * math.prod(shape.kernel) * rows
            strided = inferred_stride(shape) > 1
            gather = max(gather / (STRIDED_GATHER_EFFICIENCY if strided else 1.0), runs * GATHER_RUN_S)
        total += gather + profile.call_overhead_s
    gemm = gemm_seconds(shape.out_channels // g, positions, patch, profile, size, shape.batch * g)
    if compiled and g == 1 and profile.dtype == "float32" and packed_narrow(positions):
        gemm *= PACKED_NARROW_FACTOR
    return total + gemm / grouped_gemm_efficiency(shape.batch * g * patch * positions * size, g)


# A grouped conv's stacked GEMMs, (Og x 9Cg) @ (9Cg x P) per group, run at the profile's rate while
# their column matrix stays in the cache, and at about 0.65 of it beyond 4 MiB of columns. Measured (1
# thread, float32, 2026-12-01, shared EPYC) on the grouped layers of RegNet-X/Y and ResNeXt-50: 0.8-1.35
# of the profile's rate for the smallest dimension up to 4.1 MB of columns (Og 8-48); 0.60 at 7.2 MB
# (Og 16, 24 G/s), 0.74 at 10.8 MB (Og 48).
GROUPED_CACHED_COLUMN_BYTES = 4 << 20
GROUPED_STREAMING_EFFICIENCY = 0.65


def grouped_gemm_efficiency(column_bytes: int, groups: int) -> float:
    """The fraction of the profile's GEMM rate a grouped conv's GEMMs over `column_bytes` of columns
    reach; 1 for an ungrouped conv (the profile measured those)."""
    if groups == 1 or column_bytes <= GROUPED_CACHED_COLUMN_BYTES:
        return 1.0
    return GROUPED_STREAMING_EFFICIENCY


def direct_seconds(shape: ConvShape, profile: NumpyProfile, size: int, compiled: bool = False) -> float:
    g = shape.groups
    if compiled and grouped_simd_applies(shape):
        return grouped_simd_seconds(shape, profile.dtype, inferred_stride(shape), padded_elements(shape))
    if compiled and grouped_jit_applies(shape):
        return grouped_jit_seconds(shape, profile.dtype)
    positions = math.prod(shape.out_spatial)
    y = shape.elements()[2]
    sliced = shape.batch * shape.in_channels * positions
    # a grouped conv's strided slices are priced as its im2col gather is (an ungrouped conv's as measured
    # for ResNet-50 and VGG-16)
    slicing = profile.gather_bytes_per_s * (STRIDED_GATHER_EFFICIENCY if g > 1 and inferred_stride(shape) > 1
                                            else 1.0)
    per_offset = (2 * sliced * size / slicing
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


# The compiled grouped 3x3 kernel (backends/numpy_ref/conv_grouped_jit.py), priced by its parts, fitted
# (relative least squares) to 43 grouped layers of RegNet-X 400MF/800MF/3.2GF, RegNet-Y 400MF/800MF and
# ResNeXt-50 on the shared 2-core EPYC (1 thread, 2026-12-01 19:11 UTC, load average 2.8-3.1; with its
# ReLU; 36 of them within 10%, all within 25%): multiply-adds over the wide rows (out_w + 2 // stride
# columns, whole runs of 16) at 58 G/s in float32 (29 in float64), 54 ns per pass (four output channels
# x one input channel x one block of rows), 14 ns per output row stored, 0.41 ns per element of the
# phase-split input copy, 10 us per call.
GROUPED_FMA_PER_S = {"float32": 58e9, "float64": 29e9}
GROUPED_PASS_S = 54e-9
GROUPED_ROW_S = 14e-9
GROUPED_FILL_S = 0.41e-9
GROUPED_CALL_S = 10e-6
GROUPED_RUN = 16  # conv_grouped_jit.RUN_STEP: its runs are whole multiples of this
GROUPED_ACC = 1024  # conv_grouped_jit.ACC_ELEMENTS: wide output elements per block of rows
GROUPED_KB = 4  # conv_grouped_jit.KB: output channels per pass
GROUPED_MAX_CHANNELS = 64  # conv_grouped_jit.MAX_GROUP_CHANNELS: wider groups run NumPy's direct loop


def grouped_jit_applies(shape: ConvShape) -> bool:
    """What conv_grouped_jit.applicable runs: 2D, 3x3 kernels, groups of 2 to 64 input channels."""
    return (shape.kernel == (3, 3) and shape.groups > 1
            and 2 <= shape.in_channels // shape.groups <= GROUPED_MAX_CHANNELS)


def grouped_jit_seconds(shape: ConvShape, dtype: str) -> float:
    """backends/numpy_ref/conv_grouped_jit.py on a grouped 3x3 `shape`, per image: the phase-split copy
    of the input, then per group, block of output rows, four output channels and input channel one pass
    of nine multiply-adds per wide element, and the row stores."""
    out_h, out_w = shape.out_spatial
    wide = out_w + 2 // inferred_stride(shape)
    rows_per_block = max(1, min(out_h, GROUPED_ACC // wide))
    runs, blocks = 0, 0
    for top in range(0, out_h, rows_per_block):
        rows = min(rows_per_block, out_h - top)
        runs += -(-((rows - 1) * wide + out_w) // GROUPED_RUN) * GROUPED_RUN
        blocks += 1
    in_group, out_group = shape.in_channels // shape.groups, shape.out_channels // shape.groups
    fma = shape.out_channels * in_group * 9 * runs
    passes = shape.groups * -(-out_group // GROUPED_KB) * in_group * blocks
    rate = GROUPED_FMA_PER_S.get(dtype, GROUPED_FMA_PER_S["float32"])
    return (shape.batch * (fma / rate + passes * GROUPED_PASS_S + shape.out_channels * out_h * GROUPED_ROW_S)
            + padded_elements(shape) * GROUPED_FILL_S + GROUPED_CALL_S)


def compiled_kernels_priced() -> bool:
    """Whether estimate_numpy prices the compiled kernels (numba installed, CONVC_NUMBA not 0) by
    default: a plan modelled one way is not replayed the other (passes/conv_algo.py keys it)."""
    return compiled_cpu_kernels()


def estimate_numpy(shape: ConvShape, algo: str, profile: NumpyProfile,
                   filters_pretransformed: bool = True, compiled: bool | None = None) -> float:
    """Modelled seconds of the NumPy backend's `algo` kernel on `shape`, in the profile's dtype;
    `compiled`: whether its numba kernels run (default: compiled_cpu_kernels(), the CONVC_NUMBA switch)."""
    size = ITEMSIZE.get(profile.dtype, 4)
    if compiled is None:
        compiled = compiled_kernels_priced()
    if algo == "depthwise" and compiled and len(shape.kernel) in (1, 2):
        planes = max(1, shape.batch * shape.in_channels)
        return compiled_depthwise_seconds(shape, profile.dtype, padded_elements(shape) // planes,
                                          inferred_stride(shape))
    if algo == "direct":
        return direct_seconds(shape, profile, size, compiled)
    if algo in WINOGRAD_TILE:
        return winograd_seconds(shape, WINOGRAD_TILE[algo], profile, size, filters_pretransformed)
    if algo == "depthwise":
        return depthwise_seconds(shape, profile, size)
    # im2col, and any algorithm a plugin adds that the model does not know: priced as one GEMM.
    return im2col_seconds(shape, profile, size, compiled)
