"""Depthwise 1D/2D convolution compiled by numba (backends/numpy_ref/jit.py): one channel plane at a
time, every tap's multiply fused with its add, and the whole epilogue (bias, any activation, residual
adds) applied to each channel's output while it is in the L1 cache.

NCHW in, NCHW out, no whole-tensor transpose. Per image and input channel (a plane of H x W):

    P = the plane zero-padded and split into stride phases     # P[ph, pw, q, r] = x[q*sh + ph - top,
                                                               #                     r*sw + pw - left]
    for each filter m of the channel (the channel multiplier):
        for each block of output rows (its sums stay in the L1 cache):
            acc[run] = bias
            acc[run] += sum of P[phase(tap)][run + offset(tap)] * w[m, tap]   up to 5 taps per pass
            out[n, c * mult + m, rows, :] = acc cropped
        epilogue_jit.apply_steps on that output plane (SiLU, residual adds...)

With the phases split, every tap (i, j) reads phase ((i*dh) % sh, (j*dw) % sw) at the constant offset
(i*dh // sh) * Wq + j*dw // sw from the output's own flat index in a "wide" row of Wq columns, so the
inner loop is one contiguous run over a block of output rows: it vectorizes, whatever the stride and
dilation (the few columns past each row's end are computed and cropped). The padding is real zeros,
so a non-finite weight meeting it gives NaN, as in torch (0 * inf). The phase split of a stride-2 row
reads the row once, both phases in one loop (a strided copy per phase ran 6x slower).

    y = conv_depthwise_jit(conv)    # conv: ConvOperands of a 1D/2D depthwise conv; jit.enabled()
"""
from __future__ import annotations

import numpy as np
from convc.backends.numpy_ref import epilogue_jit, jit
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue import apply_epilogue
from convc.backends.numpy_ref.epilogue_jit import apply_steps
from convc.backends.numpy_ref.scratch import scratch

# Output elements (of one wide block of rows) summed at a time: 8 KiB of float32, in the L1 cache.
ACC_ELEMENTS = 2048

# Sums per tap run are computed in whole multiples of this many (LLVM's vector loop: 16 float32 lanes,
# unrolled 4 times); the scratch buffers have this much slack.
RUN_MULTIPLE = 64

# Output maps of at most this many positions (7x7 and 14x14: MobileNet's, EfficientNet's and ConvNeXt's
# last two stages) go channels-last, vectorized along the channels. Measured (1 thread, float32,
# 2026-12-01, shared 2-core EPYC, ms planes / channels-last, SiLU fused): 1152 7x7 5x5 0.68 / 0.28, 672
# 14x14 5x5 0.63 / 0.53, 480 14x14 3x3 0.32 / 0.22.
CHANNELS_LAST_UP_TO = 196

# ... and at least this many channels: the channels-last loops run whole vectors (LLVM's loop takes 64
# float32 at a time, fewer run scalar). ShuffleNet's 24 channels, 28x28 -> 14x14, stride 2: 54 us
# channels-last, 29 us in planes.
CHANNELS_LAST_FROM = 64


@jit.inline
def add_taps(acc: np.ndarray, phased: np.ndarray, w: np.ndarray, starts: np.ndarray, first: int,
             taps: int, run: int) -> None:
    """acc[:run] += sum of phased[starts[t]:][:run] * w[t] for the `taps` (1 to 5) taps from `first`:
    up to five taps per pass, so the sums are loaded and stored once per five multiply-adds (a 3x3
    kernel in two passes, 5x5 in five)."""
    s0, w0 = phased[starts[first]:starts[first] + run], w[first]
    if taps == 1:
        for f in range(run):
            acc[f] += s0[f] * w0
        return
    s1, w1 = phased[starts[first + 1]:starts[first + 1] + run], w[first + 1]
    if taps == 2:
        for f in range(run):
            acc[f] += s0[f] * w0 + s1[f] * w1
        return
    s2, w2 = phased[starts[first + 2]:starts[first + 2] + run], w[first + 2]
    if taps == 3:
        for f in range(run):
            acc[f] += s0[f] * w0 + s1[f] * w1 + s2[f] * w2
        return
    s3, w3 = phased[starts[first + 3]:starts[first + 3] + run], w[first + 3]
    if taps == 4:
        for f in range(run):
            acc[f] += s0[f] * w0 + s1[f] * w1 + s2[f] * w2 + s3[f] * w3
        return
    s4, w4 = phased[starts[first + 4]:starts[first + 4] + run], w[first + 4]
    for f in range(run):
        acc[f] += s0[f] * w0 + s1[f] * w1 + s2[f] * w2 + s3[f] * w3 + s4[f] * w4


@jit.inline
def inside(size: int, count: int, first: int, stride: int) -> tuple[int, int]:
    """[lo, hi): the positions r < count whose index first + r * stride falls in [0, size)."""
    lo = 0 if first >= 0 else (-first + stride - 1) // stride
    hi = 0 if first > size - 1 else min(count, (size - 1 - first) // stride + 1)
    return lo, max(lo, hi)


@jit.inline
def fill_phases(plane: np.ndarray, phased: np.ndarray, line: np.ndarray, grid_h: int, grid_w: int,
                stride_h: int, stride_w: int, top: int, left: int) -> None:
    """phased[ph, pw, q, r] = plane[q*sh + ph - top, r*sw + pw - left] where that is inside the plane;
    the rest (the padding) is left as it is: zeros, written once per call for every channel. With a
    column stride, each row goes first into `line` (zero-padded: its padding columns are never
    written) and is split from there, every phase in one pass over the line."""
    height, width = plane.shape
    for ph in range(stride_h):
        q_lo, q_hi = inside(height, grid_h, ph - top, stride_h)
        for q in range(q_lo, q_hi):
            source = plane[q * stride_h + ph - top]
            row = (ph * stride_w * grid_h + q) * grid_w  # phase (ph, 0), row q
            if stride_w == 1:
                lo, hi = inside(width, grid_w, -left, 1)
                target, source = phased[row + lo:row + hi], source[lo - left:]
                for r in range(hi - lo):
                    target[r] = source[r]
                continue
            inner = line[left:left + width]
            for r in range(min(width, stride_w * grid_w - left)):
                inner[r] = source[r]
            if stride_w == 2:
                odd_row = row + grid_h * grid_w
                even, odd = phased[row:row + grid_w], phased[odd_row:odd_row + grid_w]
                for r in range(grid_w):
                    even[r] = line[2 * r]
                    odd[r] = line[2 * r + 1]
            else:
                for pw in range(stride_w):
                    target = phased[row + pw * grid_h * grid_w:row + (pw * grid_h + 1) * grid_w]
                    for r in range(grid_w):
                        target[r] = line[r * stride_w + pw]


@jit.kernel
def depthwise_planes(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, offsets: np.ndarray,
                     grid_h: int, grid_w: int, stride_h: int, stride_w: int, top: int, left: int,
                     codes: np.ndarray, params: np.ndarray, single: bool, res0: np.ndarray, res1: np.ndarray,
                     phased: np.ndarray, line: np.ndarray, acc: np.ndarray) -> None:
    """out[n, c*mult + m] for every image n and input channel c, epilogue included.

    Pointers: x (N, C, H, W), w (C, mult, taps), bias (C * mult), out (N, C * mult, OH, OW), all
    C-contiguous of one dtype; res0, res1: residuals flattened (out.size elements each) or empty.
    Sizes: offsets[t], tap t's flat offset into the phases (phase * Hq * Wq + row * Wq + column), and
    the phase grid Hq x Wq; strides and the low padding. Meta: codes and params, the epilogue's steps
    (epilogue_jit.encode), run by apply_steps on each output plane; single: float32 (its exp).
    Scratch: phased (>= sh * sw * Hq * Wq + RUN_MULTIPLE), line (>= sw * Wq + left + W, zeros), acc (>=
    ACC_ELEMENTS + Wq + RUN_MULTIPLE)."""
    mult, taps = w.shape[1], w.shape[2]
    out_h, out_w = out.shape[2], out.shape[3]
    plane_out = out_h * out_w
    rows_per_block = max(1, min(out_h, ACC_ELEMENTS // grid_w))
    starts = np.empty(taps, np.int64)
    phased[:] = 0  # the padding of every channel's copy (fill_phases writes only the inside)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            fill_phases(x[n, c], phased, line, grid_h, grid_w, stride_h, stride_w, top, left)
            for m in range(mult):
                channel = c * mult + m
                shift = bias[channel]
                for r0 in range(0, out_h, rows_per_block):
                    rows = min(rows_per_block, out_h - r0)
                    # rounded up to whole unrolled vector loops (the scratch has the slack, zeros):
                    # a scalar remainder loop cost more than these extra sums on 14x14 maps
                    run = ((rows - 1) * grid_w + out_w + RUN_MULTIPLE - 1) // RUN_MULTIPLE * RUN_MULTIPLE
                    sums = acc[:run]
                    for f in range(run):
                        sums[f] = shift
                    for t in range(taps):
                        starts[t] = offsets[t] + r0 * grid_w
                    for t in range(0, taps, 5):
                        add_taps(sums, phased, w[c, m], starts, t, min(5, taps - t), run)
                    for r in range(rows):
                        target, source = out[n, channel, r0 + r], sums[r * grid_w:r * grid_w + out_w]
                        for q in range(out_w):
                            target[q] = source[q]
                at = (n * out.shape[1] + channel) * plane_out
                r0 = res0[at:at + plane_out] if res0.size else res0
                r1 = res1[at:at + plane_out] if res1.size else res1
                apply_steps(out[n, channel].reshape(plane_out), r0, r1, codes, params, single)


@jit.inline
def add_channel_taps(total: np.ndarray, grid: np.ndarray, wt: np.ndarray, starts: np.ndarray,
                     wstarts: np.ndarray, first: int, taps: int) -> None:
    """total[c] += sum of grid[starts[t] + c] * wt[wstarts[t] + c] for the `taps` (1 to 5) taps from
    `first`, c < total.size: add_taps with a weight per channel, the channels-last inner loop."""
    size = total.size
    g0, v0 = grid[starts[first]:starts[first] + size], wt[wstarts[first]:wstarts[first] + size]
    if taps == 1:
        for c in range(size):
            total[c] += g0[c] * v0[c]
        return
    g1 = grid[starts[first + 1]:starts[first + 1] + size]
    v1 = wt[wstarts[first + 1]:wstarts[first + 1] + size]
    if taps == 2:
        for c in range(size):
            total[c] += g0[c] * v0[c] + g1[c] * v1[c]
        return
    g2 = grid[starts[first + 2]:starts[first + 2] + size]
    v2 = wt[wstarts[first + 2]:wstarts[first + 2] + size]
    if taps == 3:
        for c in range(size):
            total[c] += g0[c] * v0[c] + g1[c] * v1[c] + g2[c] * v2[c]
        return
    g3 = grid[starts[first + 3]:starts[first + 3] + size]
    v3 = wt[wstarts[first + 3]:wstarts[first + 3] + size]
    if taps == 4:
        for c in range(size):
            total[c] += g0[c] * v0[c] + g1[c] * v1[c] + g2[c] * v2[c] + g3[c] * v3[c]
        return
    g4 = grid[starts[first + 4]:starts[first + 4] + size]
    v4 = wt[wstarts[first + 4]:wstarts[first + 4] + size]
    for c in range(size):
        total[c] += g0[c] * v0[c] + g1[c] * v1[c] + g2[c] * v2[c] + g3[c] * v3[c] + g4[c] * v4[c]


@jit.kernel
def depthwise_channels_last(grid: np.ndarray, wt: np.ndarray, bias: np.ndarray, sums: np.ndarray,
                            offsets: np.ndarray, out_w: int, stride_h: int, stride_w: int, codes: np.ndarray,
                            params: np.ndarray, single: bool) -> None:
    """sums[n, oh * OW + ow, c] for every image n and channel c (one filter per channel), vectorized
    along the channels: for maps too small for whole rows to fill a vector.

    Pointers: grid (N, rows, cols, C), the input zero-padded and channels-last; wt (taps * C: tap t's
    weights at t * C), bias (C), sums (N, OH * OW, C). Sizes: offsets[t], tap t's position in the grid
    (row * cols + column), and the output width; strides. Meta: codes, params and single, the
    epilogue's steps (no residual adds) run on the sums at the end. The caller transposes the input in
    and the sums out (NumPy's strided copies: 0.6 ns an element, a loop here took 1)."""
    images, rows, cols, channels = grid.shape
    taps = offsets.size
    plane_out = sums.shape[1]
    starts, wstarts = np.empty(taps, np.int64), np.empty(taps, np.int64)
    for t in range(taps):
        wstarts[t] = t * channels
    for n in range(images):
        padded = grid[n].reshape(rows * cols * channels)
        flat = sums[n].reshape(plane_out * channels)
        for position in range(plane_out):
            total = flat[position * channels:(position + 1) * channels]
            for c in range(channels):
                total[c] = bias[c]
            base = (position // out_w) * stride_h * cols + (position % out_w) * stride_w
            for t in range(taps):
                starts[t] = (base + offsets[t]) * channels
            for t in range(0, taps, 5):
                add_channel_taps(total, padded, wt, starts, wstarts, t, min(5, taps - t))
        apply_steps(flat, flat[:0], flat[:0], codes, params, single)


def channels_last(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, strides: tuple[int, ...],
                  pads: tuple[int, int], steps: tuple[tuple, ...], residuals: list[np.ndarray]) -> np.ndarray:
    """`out` (N, C, OH, OW) = the depthwise conv of x (N, C, H, W) by w (C, 1, KH, KW) through
    depthwise_channels_last, then the epilogue `steps` (in the kernel unless they add residuals)."""
    n, c, height, width = x.shape
    out_h, out_w = out.shape[2:]
    (sh, sw, dh, dw), (top, left) = strides, pads
    kh, kw = w.shape[2:]
    rows, cols = (out_h - 1) * sh + (kh - 1) * dh + 1, (out_w - 1) * sw + (kw - 1) * dw + 1
    grid = scratch("depthwise padded input", (n, rows, cols, c), x.dtype)
    inner_h, inner_w = min(height, rows - top), min(width, cols - left)
    grid[:, :top] = 0  # the padding only: the inside is copied over
    grid[:, top + inner_h:] = 0
    grid[:, top:top + inner_h, :left] = 0
    grid[:, top:top + inner_h, left + inner_w:] = 0
    np.copyto(grid[:, top:top + inner_h, left:left + inner_w],
              x[:, :, :inner_h, :inner_w].transpose(0, 2, 3, 1))
    wt = np.ascontiguousarray(w.reshape((c, -1)).T).reshape(-1)
    offsets = np.array([i * dh * cols + j * dw for i in range(kh) for j in range(kw)], np.int64)
    sums = scratch("depthwise sums", (n, out_h * out_w, c), x.dtype)
    in_kernel = not residuals
    codes, params = epilogue_jit.encode(steps if in_kernel else (), x.dtype)
    depthwise_channels_last(grid, wt, bias, sums, offsets, out_w, sh, sw, codes, params,
                            x.dtype == np.float32)
    np.copyto(out.reshape((n, c, out_h * out_w)), sums.transpose(0, 2, 1))
    return out if in_kernel else apply_epilogue(out, None, steps, residuals)


def jit_applicable(conv: ConvOperands) -> bool:
    """1D and 2D depthwise convs (3D ones keep the NumPy kernel)."""
    return len(conv.kernel) in (1, 2)


def conv_depthwise_jit(conv: ConvOperands) -> np.ndarray:
    """The 1D/2D depthwise conv of `conv` (groups == C, any multiplier) with its bias and epilogue."""
    one_d = conv.x.ndim == 3
    dtype = np.result_type(conv.x, conv.weight)
    x = np.ascontiguousarray(conv.x[:, :, None, :] if one_d else conv.x, dtype=dtype)
    n, c = x.shape[:2]
    kernel = (1,) + conv.kernel if one_d else conv.kernel
    w = np.ascontiguousarray(conv.weight, dtype=dtype).reshape((c, -1) + kernel)
    mult = w.shape[1]

    def as2d(t: tuple[int, ...], fill: int) -> tuple[int, ...]:
        return (fill,) + t if one_d else t
    (sh, sw), (dh, dw) = as2d(conv.stride, 1), as2d(conv.dilation, 1)
    pads = [tuple(p) for p in conv.node.attrs["padding"]]
    (top, _), (left, _) = ([(0, 0)] + pads) if one_d else pads
    out_h, out_w = as2d(conv.out_spatial, 1)
    out = np.empty((n, c * mult, out_h, out_w), dtype)
    bias = np.zeros(c * mult, dtype) if conv.bias is None else np.ascontiguousarray(conv.bias, dtype=dtype)
    steps = tuple(conv.node.attrs["epilogue"])
    residuals = [r[:, :, None, :] if one_d else r for r in conv.residuals]
    if mult == 1 and out_h * out_w <= CHANNELS_LAST_UP_TO and c >= CHANNELS_LAST_FROM:
        channels_last(x, w, bias, out, (sh, sw, dh, dw), (top, left), steps, residuals)
        return out[:, :, 0, :] if one_d else out
    in_kernel, codes, params, res0, res1 = epilogue_jit.kernel_epilogue(steps, residuals, dtype)
    grid_h = out_h + (kernel[0] - 1) * dh // sh
    grid_w = out_w + (kernel[1] - 1) * dw // sw
    offsets = np.array([((i * dh % sh) * sw + j * dw % sw) * grid_h * grid_w + (i * dh // sh) * grid_w
                        + j * dw // sw for i in range(kernel[0]) for j in range(kernel[1])], np.int64)
    phased = scratch("depthwise padded input", (sh * sw * grid_h * grid_w + RUN_MULTIPLE,), dtype)
    line = np.zeros(sw * grid_w + left + x.shape[3], dtype)
    acc = scratch("depthwise sums", (ACC_ELEMENTS + grid_w + RUN_MULTIPLE,), dtype)
    depthwise_planes(x, w.reshape((c, mult, -1)), bias, out, offsets, grid_h, grid_w, sh, sw, top, left,
                     codes, params, dtype == np.float32, res0, res1, phased, line, acc)
    if not in_kernel:
        apply_epilogue(out, None, steps, residuals)
    return out[:, :, 0, :] if one_d else out
