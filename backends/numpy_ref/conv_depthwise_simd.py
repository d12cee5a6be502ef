"""Depthwise 2D convolution (one filter per channel) with its sums held in vector registers (simd.py):
the compiled kernel of MobileNet's, EfficientNet's, MNASNet's and ConvNeXt's depthwise layers.

NCHW in, NCHW out, no transpose. Per image and channel the plane is copied zero-padded and split into
its stride's phases (row phases by the row copies; column phases by one long deinterleaving loop over
the padded rows), so that every tap reads one contiguous run of "wide" rows (Wq columns: the output's
plus the kernel's overhang) at its own constant offset, as in conv_depthwise_jit.py. Then per block of
output rows (up to BLOCK_ELEMENTS wide positions; small planes several to a block):

    for each tile of 8 vectors of wide positions (then one of 4, one of 1): # 128 float32 positions
        acc[v] = bias                                 v < 8: in registers across all taps
        for each tap t:
            w = the tap's weight in every lane        # one broadcast, used by 8 multiply-adds
            acc[v] = fma(phased[start(t) + position(v) : + L], w, acc[v])
        sums[tile] = acc
    the rows cropped from the sums into out, then the epilogue on them (contiguous: one channel's block
    of rows, or several whole planes; residual adds included)

against conv_depthwise_jit.py's loop that loads and stores its sums every five taps. The copies and
crops move whole vectors: a last, partial one is loaded masked and stored whole (a masked store costs
10 ns on Zen 4), its extra lanes landing on padding, on rows written after it, or on a vector of slack.
The padding is real zeros: a non-finite weight meeting it gives NaN, as in torch (0 * inf).

    y = conv_depthwise_simd(conv)    # conv: ConvOperands of a 1D/2D depthwise conv, one filter per channel
"""
from __future__ import annotations

import functools

import numpy as np
from convc.backends.numpy_ref import epilogue_jit, jit, simd
from convc.backends.numpy_ref.conv_depthwise_jit import inside
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue import apply_epilogue
from convc.backends.numpy_ref.epilogue_jit import apply_steps
from convc.backends.numpy_ref.scratch import scratch

# Wide output elements summed per block (16 KiB of float32: the block, the rows it reads and the
# epilogue's pass over it stay in the L1 cache). Planes smaller than this share one block.
BLOCK_ELEMENTS = 4096

# The wide runs are computed in whole multiples of this many vectors (the smaller register tile).
TILE_VECTORS = 4


@jit.inline
def tile8(phased: np.ndarray, first: int, starts: np.ndarray, w: np.ndarray, w0: int, taps: int,
          sums: np.ndarray, at: int, shift: float) -> None:
    """sums[at : at + 8L] = shift + sum over taps t of phased[first + starts[t] :][: 8L] * w[w0 + t]."""
    lanes = simd.lanes(sums)
    a0 = simd.splat_value(sums, shift)
    a1, a2, a3, a4, a5, a6, a7 = a0, a0, a0, a0, a0, a0, a0
    for t in range(taps):
        v = simd.splat_unchecked(w, w0 + t)
        p = first + starts[t]
        a0 = simd.fma(simd.load_unchecked(phased, p), v, a0)
        a1 = simd.fma(simd.load_unchecked(phased, p + lanes), v, a1)
        a2 = simd.fma(simd.load_unchecked(phased, p + 2 * lanes), v, a2)
        a3 = simd.fma(simd.load_unchecked(phased, p + 3 * lanes), v, a3)
        a4 = simd.fma(simd.load_unchecked(phased, p + 4 * lanes), v, a4)
        a5 = simd.fma(simd.load_unchecked(phased, p + 5 * lanes), v, a5)
        a6 = simd.fma(simd.load_unchecked(phased, p + 6 * lanes), v, a6)
        a7 = simd.fma(simd.load_unchecked(phased, p + 7 * lanes), v, a7)
    simd.store_unchecked(sums, at, a0)
    simd.store_unchecked(sums, at + lanes, a1)
    simd.store_unchecked(sums, at + 2 * lanes, a2)
    simd.store_unchecked(sums, at + 3 * lanes, a3)
    simd.store_unchecked(sums, at + 4 * lanes, a4)
    simd.store_unchecked(sums, at + 5 * lanes, a5)
    simd.store_unchecked(sums, at + 6 * lanes, a6)
    simd.store_unchecked(sums, at + 7 * lanes, a7)


@jit.inline
def tile4(phased: np.ndarray, first: int, starts: np.ndarray, w: np.ndarray, w0: int, taps: int,
          sums: np.ndarray, at: int, shift: float) -> None:
    """tile8 on 4 vectors: the last tile of a run that is not a multiple of 8 vectors."""
    lanes = simd.lanes(sums)
    a0 = simd.splat_value(sums, shift)
    a1, a2, a3 = a0, a0, a0
    for t in range(taps):
        v = simd.splat_unchecked(w, w0 + t)
        p = first + starts[t]
        a0 = simd.fma(simd.load_unchecked(phased, p), v, a0)
        a1 = simd.fma(simd.load_unchecked(phased, p + lanes), v, a1)
        a2 = simd.fma(simd.load_unchecked(phased, p + 2 * lanes), v, a2)
        a3 = simd.fma(simd.load_unchecked(phased, p + 3 * lanes), v, a3)
    simd.store_unchecked(sums, at, a0)
    simd.store_unchecked(sums, at + lanes, a1)
    simd.store_unchecked(sums, at + 2 * lanes, a2)
    simd.store_unchecked(sums, at + 3 * lanes, a3)


@jit.inline
def tile1(phased: np.ndarray, first: int, starts: np.ndarray, w: np.ndarray, w0: int, taps: int,
          sums: np.ndarray, at: int, shift: float) -> None:
    """tile8 on one vector: the last of a run of 4k + 1 (a chain of taps, but a 7x7 map's run of 5
    vectors is then 5, not 8)."""
    a0 = simd.splat_value(sums, shift)
    for t in range(taps):
        a0 = simd.fma(simd.load_unchecked(phased, first + starts[t]), simd.splat_unchecked(w, w0 + t), a0)
    simd.store_unchecked(sums, at, a0)


@jit.inline
def padded_run(positions: int, lanes: int) -> int:
    """`positions` rounded up to whole tiles of TILE_VECTORS vectors."""
    step = TILE_VECTORS * lanes
    return (positions + step - 1) // step * step


@jit.kernel
def depthwise_simd(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, out_h: int, out_w: int,
                   offsets: np.ndarray,
                   grid_h: int, grid_w: int, stride_h: int, stride_w: int, top: int, left: int,
                   codes: np.ndarray, params: np.ndarray, single: bool, res0: np.ndarray, res1: np.ndarray,
                   phased: np.ndarray, split: np.ndarray, sums: np.ndarray) -> None:
    """out[n, c] for every image n and channel c, epilogue included.

    Pointers: x (N, C, H, W), w (C, taps), bias (C), out (N * C * OH * OW + L: a vector of slack, as
    the rows are stored in whole vectors), all C-contiguous of one dtype; res0, res1: residuals
    flattened like out (without the slack), or empty. Sizes: the output map; offsets[t], tap t's flat
    offset into the phases ((pw * sh + ph) * Hq * Wq + row * Wq + column), the phase grid Hq x Wq,
    strides, low padding. Meta: codes, params, single: the epilogue (epilogue_jit.encode), run on the
    stored rows. Scratch: phased (sh * sw * Hq * Wq, + the largest offset's reach past a plane, + a
    vector), split (the padded rows before the column split, sh * Hq * sw * Wq + a vector; empty when
    sw == 1), sums (BLOCK_ELEMENTS + Wq + two tiles of 4 vectors). Raises IndexError where a scratch
    array is too small for the tiles' unchecked accesses."""
    images, channels, height, width = x.shape
    span = stride_w * grid_w  # columns of a padded row, before the split into column phases
    col_lo, col_hi = inside(width, span, -left, 1)
    count = col_hi - col_lo  # columns of a row copied
    phase_size = stride_h * grid_h * grid_w  # one column phase: every row phase's rows
    taps = offsets.size
    lanes = simd.lanes(sums)
    plane_out = out_h * out_w
    budget = sums.size - padded_run(grid_w, lanes) - TILE_VECTORS * lanes
    rows_per_block = max(1, min(out_h, budget // grid_w))
    whole = padded_run((out_h - 1) * grid_w + out_w, lanes)  # one plane's run, if in one block
    group = max(1, budget // whole) if rows_per_block == out_h else 1
    largest = 0
    for t in range(taps):
        largest = max(largest, offsets[t])
    # the tiles' unchecked loads of a block starting at row r0 end before r0 * Wq + its padded run +
    # the largest offset; their stores before the padded runs of the block's channels
    reach, stored = 0, group * whole if rows_per_block == out_h else 0
    for r0 in range(0, out_h, rows_per_block):
        run = padded_run((min(rows_per_block, out_h - r0) - 1) * grid_w + out_w, lanes)
        reach, stored = max(reach, r0 * grid_w + run + largest), max(stored, run)
    if (reach > phased.size or stored > sums.size or w.size < channels * taps or bias.size < channels
            or (stride_w > 1 and split.size < stride_w * phase_size)):
        raise IndexError("depthwise_simd: scratch arrays too small for the tiles' accesses")
    starts = np.empty(taps, np.int64)
    for t in range(taps):
        starts[t] = offsets[t]
    wide8 = 8 * lanes
    phased[:] = 0  # the padding of every channel's copy (only the inside is written per channel)
    split[:] = 0
    for n in range(images):
        for c0 in range(0, channels, group):
            members = min(group, channels - c0)
            for r0 in range(0, out_h, rows_per_block):
                rows = min(rows_per_block, out_h - r0)
                needed = (rows - 1) * grid_w + out_w
                run = padded_run(needed, lanes)
                for k in range(members):
                    c = c0 + k
                    if r0 == 0:
                        # the plane's rows (columns not split) into the phases of rows, a vector at
                        # a time; the last one stored whole, its lanes past the row zeros: padding,
                        # or rows written after it (inline: a helper taking the arrays costs numba
                        # reference counts per row)
                        target = phased if stride_w == 1 else split
                        for ph in range(stride_h):
                            q_lo, q_hi = inside(height, grid_h, ph - top, stride_h)
                            for q in range(q_lo, q_hi):
                                to = (ph * grid_h + q) * span + col_lo
                                fro = ((n * channels + c) * height + q * stride_h + ph - top) * width \
                                    + col_lo - left
                                i = 0
                                while i + lanes < count:
                                    simd.store(target, to + i, simd.load(x, fro + i))
                                    i += lanes
                                simd.store(target, to + i, simd.load_partial(x, fro + i, count - i))
                        if stride_w == 2:  # the columns' phases: one long loop (LLVM's interleaved loads)
                            even, odd = phased[:phase_size], phased[phase_size:2 * phase_size]
                            for i in range(phase_size):
                                even[i] = split[2 * i]
                                odd[i] = split[2 * i + 1]
                        elif stride_w > 2:
                            for pw in range(stride_w):
                                part = phased[pw * phase_size:(pw + 1) * phase_size]
                                for i in range(phase_size):
                                    part[i] = split[i * stride_w + pw]
                    shift = bias[c]
                    first = r0 * grid_w
                    base = k * run
                    # tiles of 8 vectors while six or more are left (the run has room), then one
                    # of 4 (two to five left), then one of 1 (one left: 7x7 5x5 maps run 4 + 1)
                    f = 0
                    while needed - f > 5 * lanes:
                        tile8(phased, first + f, starts, w, c * taps, taps, sums, base + f, shift)
                        f += wide8
                    if needed - f > lanes:
                        tile4(phased, first + f, starts, w, c * taps, taps, sums, base + f, shift)
                        f += 4 * lanes
                    if f < needed:
                        tile1(phased, first + f, starts, w, c * taps, taps, sums, base + f, shift)
                for k in range(members):
                    for r in range(rows):
                        # whole vectors: the lanes past the row land on later rows, or the slack
                        to = ((n * channels + c0 + k) * out_h + r0 + r) * out_w
                        fro = k * run + r * grid_w
                        for i in range(0, out_w, lanes):
                            simd.store(out, to + i, simd.load(sums, fro + i))
                # the epilogue on the rows just stored, contiguous: the block's rows of one channel,
                # or the whole planes of several
                lo = (n * channels + c0) * plane_out + r0 * out_w
                hi = lo + (members * plane_out if members > 1 else rows * out_w)
                apply_steps(out[lo:hi], res0[lo:hi] if res0.size else res0,
                            res1[lo:hi] if res1.size else res1,
                            codes, params, single)


def simd_applicable(conv: ConvOperands) -> bool:
    """1D/2D depthwise convs with one filter per channel, in a dtype the compiled kernels take."""
    return (len(conv.kernel) in (1, 2) and conv.weight.shape[0] == conv.x.shape[1]
            and jit.enabled_for(np.result_type(conv.x, conv.weight)))


@functools.lru_cache(maxsize=256)
def geometry(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
             out_hw: tuple[int, int], lanes: int) -> tuple[int, int, np.ndarray, int, int, int]:
    """(Hq, Wq, the taps' offsets, and the sizes of phased, split and sums) of a 2D layer (cached: the
    wrapper's set-up was half of a small layer's 30 us)."""
    (kh, kw), (sh, sw), (dh, dw), (out_h, out_w) = kernel, stride, dilation, out_hw
    grid_h, grid_w = out_h + (kh - 1) * dh // sh, out_w + (kw - 1) * dw // sw
    # phases ordered column phase first: (pw, ph), as the split of the padded rows leaves them
    offsets = np.array([((j * dw % sw) * sh + i * dh % sh) * grid_h * grid_w + (i * dh // sh) * grid_w
                        + j * dw // sw for i in range(kh) for j in range(kw)], np.int64)
    offsets.flags.writeable = False
    tile = TILE_VECTORS * lanes
    # the last block's run reaches at most one tile past the plane's wide rows, from the largest offset
    phased = int(offsets.max()) + grid_h * grid_w + tile
    split = sh * grid_h * sw * grid_w + lanes if sw > 1 else 0
    return grid_h, grid_w, offsets, phased, split, BLOCK_ELEMENTS + grid_w + 2 * tile


def conv_depthwise_simd(conv: ConvOperands) -> np.ndarray:
    """The depthwise conv of `conv` (see simd_applicable) with its bias and epilogue, NCHW (NCW in 1D)."""
    one_d = conv.x.ndim == 3
    dtype = np.result_type(conv.x, conv.weight)
    x = np.ascontiguousarray(conv.x[:, :, None, :] if one_d else conv.x, dtype=dtype)
    n, c = x.shape[:2]
    pads = conv.node.attrs["padding"]
    if one_d:
        kernel, stride, dilation, out_hw = ((1,) + conv.kernel, (1,) + conv.stride, (1,) + conv.dilation,
                                            (1,) + conv.out_spatial)
        top, left = 0, pads[0][0]
    else:
        kernel, stride, dilation, out_hw = conv.kernel, conv.stride, conv.dilation, conv.out_spatial
        top, left = pads[0][0], pads[1][0]
    lanes = simd.lanes_of(dtype)
    grid_h, grid_w, offsets, phased, split, sums = geometry(kernel, stride, dilation, out_hw, lanes)
    w = np.ascontiguousarray(conv.weight, dtype=dtype).reshape(c, -1)
    bias = np.zeros(c, dtype) if conv.bias is None else np.ascontiguousarray(conv.bias, dtype=dtype)
    steps = tuple(conv.node.attrs["epilogue"])
    residuals = [r[:, :, None, :] if one_d else r for r in conv.residuals]
    in_kernel, codes, params, res0, res1 = epilogue_jit.kernel_epilogue(steps, residuals, dtype)
    out_h, out_w = out_hw
    size = n * c * out_h * out_w
    flat = np.empty(size + lanes, dtype)
    depthwise_simd(x, w, bias, flat, out_h, out_w, offsets, grid_h, grid_w, stride[0], stride[1], top, left,
                   codes, params, dtype == np.float32, res0, res1,
                   scratch("depthwise padded input", (phased,), dtype),
                   scratch("depthwise rows to split", (split,), dtype),
                   scratch("depthwise sums", (sums,), dtype))
    out = flat[:size].reshape(n, c, out_h, out_w)
    if not in_kernel:
        apply_epilogue(out, None, steps, residuals)
    return out[:, :, 0, :] if one_d else out
