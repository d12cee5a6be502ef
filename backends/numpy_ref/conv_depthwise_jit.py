"""Depthwise 1D/2D convolution compiled by numba (backends/numpy_ref/jit.py): one channel plane at a
time, every tap's multiply fused with its add, the bias and a simple activation fused into the store.

NCHW in, NCHW out, no whole-tensor transpose. Per image and input channel (a plane of H x W):

    P = the plane zero-padded and split into stride phases     # P[ph, pw, q, r] = x[q*sh + ph - top,
                                                               #                     r*sw + pw - left]
    for each block of output rows (its sums stay in the L1 cache):
        for each filter m of the channel (the channel multiplier):
            acc[run] = P[phase(tap 0)][run + offset(tap 0)] * w[m, tap 0]
            acc[run] += P[phase(tap)][run + offset(tap)] * w[m, tap]      for every other tap
            out[n, c * mult + m, rows, :] = activation(acc cropped + bias)

With the phases split, every tap (i, j) reads phase ((i*dh) % sh, (j*dw) % sw) at the constant offset
(i*dh // sh) * Wq + j*dw // sw from the output's own flat index in a "wide" row of Wq columns, so the
inner loop is one contiguous run over a block of output rows: it vectorizes, whatever the stride and
dilation (the few columns past each row's end are computed and cropped). The padding is real zeros,
so a non-finite weight meeting it gives NaN, as in torch (0 * inf).

Activations fused into the store (`ACTIVATIONS`): relu, clip (relu6), hardswish, hardsigmoid and
leaky_relu, the ones without a transcendental function; the others (silu, sigmoid, gelu...) and
residual adds run afterwards through epilogue.apply_epilogue on each block of channels, while it is
still in the L2 cache (numba has no vector exp here, NumPy does).

    y = conv_depthwise_jit(conv)    # conv: ConvOperands of a 1D/2D depthwise conv; jit.enabled()
"""
from __future__ import annotations

import numpy as np

from convc.backends.numpy_ref import jit
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue import apply_epilogue
from convc.backends.numpy_ref.scratch import scratch

# The epilogue's first step, when it is one of these, is applied in the store (code, arguments).
ACTIVATIONS = {"relu": 1, "clip": 2, "hardswish": 3, "hardsigmoid": 4, "leaky_relu": 5}

# Output elements (of one wide block of rows) summed at a time: 8 KiB of float32, in the L1 cache.
ACC_ELEMENTS = 2048

# Sums per tap run are computed in whole multiples of this many (LLVM's vector loop: 16 float32 lanes,
# unrolled 4 times); the scratch buffers have this much slack.
RUN_MULTIPLE = 64

# Output maps of at most this many positions (7x7 and 14x14: MobileNet's, EfficientNet's and
# ConvNeXt's last two stages) go channels-last, vectorized along the channels. Measured (1 thread,
# float32, 2026-12-01, shared 2-core EPYC, best of 30, ms planes / channels-last): 960 channels 7x7 3x3
# 0.24 / 0.12, 768 7x7 7x7 0.63 / 0.25, 672 14x14 5x5 0.57 / 0.48, 384 14x14 7x7 0.52 / 0.44, 384
# 14x14 3x3 0.20 / 0.18; but 192 28x28 3x3 0.29 / 0.38 and 240 28x28 5x5 0.62 / 1.12.
CHANNELS_LAST_UP_TO = 196

# Bytes of output per call of the compiled kernel when an epilogue step is left to NumPy: each block
# of channels gets its remaining steps while it is still in the L2 cache.
EPILOGUE_BLOCK_BYTES = 1 << 18


@jit.inline
def store_row(row: np.ndarray, sums: np.ndarray, code: int, k: np.ndarray) -> None:
    """row[:] = activation `code` of ACTIVATIONS on sums, in the arrays' dtype; k holds (a, b, 0, 3, 6)
    in that dtype (a, b: clip's bounds or leaky_relu's slope). One loop per code, so each vectorizes;
    NaN stays NaN as in torch (comparisons with NaN are false, each branch then keeps v)."""
    a, b, zero, three, six = k[0], k[1], k[2], k[3], k[4]
    if code == 0:
        for q in range(row.size):
            row[q] = sums[q]
    elif code == 1:
        for q in range(row.size):
            v = sums[q]
            row[q] = zero if v < zero else v
    elif code == 2:
        for q in range(row.size):
            v = sums[q]
            row[q] = a if v < a else (b if v > b else v)
    elif code == 3 or code == 4:
        for q in range(row.size):
            v = sums[q]
            gate = v + three
            gate = zero if gate < zero else (six if gate > six else gate)
            row[q] = v * gate / six if code == 3 else gate / six
    else:
        for q in range(row.size):
            v = sums[q]
            row[q] = v * a if v < zero else v


@jit.inline
def add_taps(acc: np.ndarray, phased: np.ndarray, w: np.ndarray, starts: np.ndarray, first: int,
             taps: int, run: int) -> None:
    """acc[:run] += sum of phased[starts[t]:][:run] * w[t] for the `taps` (1 to 4) taps from `first`:
    up to four taps per pass, so the sums are loaded and stored once per four multiply-adds."""
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
    for f in range(run):
        acc[f] += s0[f] * w0 + s1[f] * w1 + s2[f] * w2 + s3[f] * w3


@jit.inline
def inside(size: int, count: int, first: int, stride: int) -> tuple[int, int]:
    """[lo, hi): the positions r < count whose index first + r * stride falls in [0, size)."""
    lo = 0 if first >= 0 else (-first + stride - 1) // stride
    hi = 0 if first > size - 1 else min(count, (size - 1 - first) // stride + 1)
    return lo, max(lo, hi)


@jit.inline
def fill_phases(plane: np.ndarray, phased: np.ndarray, grid_h: int, grid_w: int, stride_h: int,
                stride_w: int, top: int, left: int) -> None:
    """phased[ph, pw, q, r] = plane[q*sh + ph - top, r*sw + pw - left] where that is inside the plane;
    the rest (the padding) is left as it is: zeros, written once per call for every channel (a short
    row's copy costs less than its padding's loops)."""
    height, width = plane.shape
    for ph in range(stride_h):
        q_lo, q_hi = inside(height, grid_h, ph - top, stride_h)
        for pw in range(stride_w):
            base = (ph * stride_w + pw) * grid_h * grid_w
            lo, hi = inside(width, grid_w, pw - left, stride_w)
            first_col = lo * stride_w + pw - left
            for q in range(q_lo, q_hi):
                row = base + q * grid_w
                if stride_w == 1:
                    source = plane[q * stride_h + ph - top]
                    for r in range(lo, hi):
                        phased[row + r] = source[first_col + r - lo]
                else:  # views: the strided loads need no wraparound test
                    last_col = first_col + (hi - lo - 1) * stride_w
                    source = plane[q * stride_h + ph - top, first_col:last_col + 1:stride_w]
                    target = phased[row + lo:row + hi]
                    for r in range(hi - lo):
                        target[r] = source[r]


@jit.kernel
def depthwise_planes(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, first: int,
                     last: int, stride_h: int, stride_w: int, dil_h: int, dil_w: int, top: int, left: int,
                     code: int, k: np.ndarray, phased: np.ndarray, acc: np.ndarray) -> None:
    """out[n, c*mult + m] for input channels first <= c < last of every image n.

    Pointers: x (N, C, H, W), w (C, mult, KH, KW), bias (C * mult), out (N, C * mult, OH, OW), all
    C-contiguous of one dtype; scratch: phased (>= sh * sw * Hq * Wq), acc (>= ACC_ELEMENTS + Wq).
    Sizes come from the arrays; strides, dilations and the low padding are given. Meta: code and k
    (store_row's constants) select the fused activation."""
    mult, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    grid_h = out_h + (kh - 1) * dil_h // stride_h
    grid_w = out_w + (kw - 1) * dil_w // stride_w
    plane = grid_h * grid_w
    rows_per_block = max(1, min(out_h, ACC_ELEMENTS // grid_w))
    starts = np.empty(kw, np.int64)
    phased[:] = 0  # the padding of every channel's copy (fill_phases writes only the inside)
    for n in range(x.shape[0]):
        for c in range(first, last):
            fill_phases(x[n, c], phased, grid_h, grid_w, stride_h, stride_w, top, left)
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
                    for i in range(kh):
                        row_base = (r0 + i * dil_h // stride_h) * grid_w
                        phase_h = (i * dil_h % stride_h) * stride_w
                        for j in range(kw):
                            phase = phase_h + j * dil_w % stride_w
                            starts[j] = phase * plane + row_base + j * dil_w // stride_w
                        for j in range(0, kw, 4):
                            add_taps(sums, phased, w[c, m, i], starts, j, min(4, kw - j), run)
                    for r in range(rows):
                        store_row(out[n, channel, r0 + r], sums[r * grid_w:r * grid_w + out_w], code, k)


@jit.kernel
def depthwise_channels_last(x: np.ndarray, wt: np.ndarray, bias: np.ndarray, out: np.ndarray, first: int,
                            last: int, stride_h: int, stride_w: int, dil_h: int, dil_w: int, top: int,
                            left: int, code: int, k: np.ndarray, padded: np.ndarray, acc: np.ndarray) -> None:
    """out[n, c] for channels first <= c < last of every image n (one filter per channel), vectorized
    along the channels: for maps too small for whole rows to fill a vector.

    Pointers: x (N, C, H, W), wt (KH, KW, C) (the weights transposed), bias (C), out (N, C, OH, OW);
    scratch: padded (>= Hp * Wp * (last - first)), acc (>= OH * OW * (last - first)). Sizes from the
    arrays; strides, dilations, low padding given; code and k: the fused activation (store_row).
    The sums are kept channels-last and stored channel by channel at the end: a store per output
    position scattered over the channels' planes missed the cache on every element (2.6x slower)."""
    height, width = x.shape[2], x.shape[3]
    kh, kw = wt.shape[0], wt.shape[1]
    out_h, out_w = out.shape[2], out.shape[3]
    rows = (out_h - 1) * stride_h + (kh - 1) * dil_h + 1
    cols = (out_w - 1) * stride_w + (kw - 1) * dil_w + 1
    block = last - first
    grid = padded[:rows * cols * block].reshape((rows, cols, block))
    sums = acc[:out_h * out_w * block].reshape((out_h, out_w, block))
    shift = bias[first:last]
    for n in range(x.shape[0]):
        grid[:] = 0  # the padding (and the rows and columns the window never reads: cheap, small maps)
        for h in range(min(height, rows - top)):
            for q in range(min(width, cols - left)):
                cell = grid[top + h, left + q]
                for c in range(block):
                    cell[c] = x[n, first + c, h, q]
        for oh in range(out_h):
            for ow in range(out_w):
                total = sums[oh, ow]
                for c in range(block):
                    total[c] = shift[c]
                for i in range(kh):
                    for j in range(kw):
                        source = grid[oh * stride_h + i * dil_h, ow * stride_w + j * dil_w]
                        weights = wt[i, j, first:last]
                        for c in range(block):
                            total[c] += source[c] * weights[c]
        flat = sums.reshape((out_h * out_w, block))
        for c in range(block):
            store_row(out[n, first + c].reshape(out_h * out_w), flat[:, c], code, k)


def jit_applicable(conv: ConvOperands) -> bool:
    """1D and 2D depthwise convs (3D ones keep the NumPy kernel)."""
    return len(conv.kernel) in (1, 2)


def fused_activation(steps: tuple[tuple, ...]) -> tuple[int, float, float, tuple[tuple, ...]]:
    """(code, a, b, the remaining steps) for an epilogue whose first step the store can apply."""
    if not steps or steps[0][0] not in ACTIVATIONS:
        return 0, 0.0, 0.0, steps
    name, args = steps[0][0], tuple(float(v) for v in steps[0][1:])
    a, b = (args + (0.0, 0.0))[:2]
    return ACTIVATIONS[name], a, b, steps[1:]


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
    code, a, b, rest = fused_activation(tuple(conv.node.attrs["epilogue"]))
    k = np.array([a, b, 0, 3, 6], dtype)
    strides = (sh, sw, dh, dw, top, left)
    if mult == 1 and out_h * out_w <= CHANNELS_LAST_UP_TO:
        wt = np.ascontiguousarray(w.reshape((c,) + kernel).transpose(1, 2, 0))
        rows = (out_h - 1) * sh + (kernel[0] - 1) * dh + 1
        cols = (out_w - 1) * sw + (kernel[1] - 1) * dw + 1
        padded = scratch("depthwise padded input", (rows * cols * c,), dtype)
        acc = scratch("depthwise sums", (out_h * out_w * c,), dtype)

        def run(image: slice, first: int, last: int) -> None:
            depthwise_channels_last(x[image], wt, bias, out[image], first, last, *strides, code, k, padded,
                                    acc)
    else:
        grid_h = out_h + (kernel[0] - 1) * dh // sh
        grid_w = out_w + (kernel[1] - 1) * dw // sw
        phased = scratch("depthwise padded input", (sh * sw * grid_h * grid_w + RUN_MULTIPLE,), dtype)
        acc = scratch("depthwise sums", (ACC_ELEMENTS + grid_w + RUN_MULTIPLE,), dtype)

        def run(image: slice, first: int, last: int) -> None:
            depthwise_planes(x[image], w, bias, out[image], first, last, *strides, code, k, phased, acc)
    if not rest:
        run(slice(None), 0, c)
        return out[:, :, 0, :] if one_d else out
    block = max(1, EPILOGUE_BLOCK_BYTES // (mult * out_h * out_w * dtype.itemsize))
    residuals = [r[:, :, None, :] if one_d else r for r in conv.residuals]
    for image in range(n):
        for c0 in range(0, c, block):
            c1 = min(c, c0 + block)
            run(slice(image, image + 1), c0, c1)
            channels = slice(c0 * mult, c1 * mult)
            apply_epilogue(out[image:image + 1, channels], None, rest,
                           [r[image:image + 1, channels] for r in residuals])
    return out[:, :, 0, :] if one_d else out
