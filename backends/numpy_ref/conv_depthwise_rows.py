"""Depthwise 1D/2D convolution (groups == channels, one filter per channel) channels-last, block by
block of output rows: what the NumPy backend runs for the depthwise layers of MobileNet, MNASNet,
EfficientNet and ConvNeXt.

The input is copied once into a zero-padded channels-last buffer (N, rows, phase, columns, C), its
columns split into `stride` phases (column q*stride + phase), so that every kernel tap reads each output
row's (out_width, C) window as one contiguous run whatever the stride. The output is then made one block
of rows at a time (about 1 MiB: the block and its products mostly stay in the 2 MiB L2 cache):

    for each block of output rows:
        acc  = window(tap 0) * w[tap 0]             # written, not zeros + add
        for each other tap:  acc += window(tap) * w[tap]     (a multiply into a scratch block, an add)
        epilogue(acc) (bias, activations, residuals), then acc transposed into out[n, :, rows, :]

Each tap's weights are tiled over the output width beforehand, so the multiply runs over one long
contiguous inner loop rather than C-element pieces. The padding is real zeros: a non-finite weight
meeting it gives NaN, as in torch (0 * inf).

    y = conv_depthwise_rows(conv)     # conv: ConvOperands of a 1D/2D conv with groups == out_channels
"""
from __future__ import annotations

import numpy as np

from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue import apply_epilogue
from convc.backends.numpy_ref.scratch import scratch
from convc.backends.numpy_ref.windows import valid_outputs

# Bytes of one block of accumulated output rows. Measured (1 thread, float32, 2026-12-01, shared 2-core
# EPYC, MobileNet/EfficientNet/ConvNeXt shapes): 32 KiB blocks were 1.3-2x slower than 128 KiB - 1 MiB
# ones (more NumPy calls); 1 MiB took 0.88-0.97x the time of 256 KiB on 28x28 and 14x14 maps (21
# alternating rounds); whole-tensor passes lost 20-40% on 56x56 and larger maps (L2 misses).
BLOCK_BYTES = 1 << 20


def rows_applicable(conv: ConvOperands) -> bool:
    """True for the 1D/2D depthwise convs this kernel runs: one output channel per input channel."""
    return len(conv.kernel) in (1, 2) and conv.weight.shape[0] == conv.x.shape[1]


def _as_2d(values: tuple[int, ...], fill: int) -> tuple[int, int]:
    return (fill, values[0]) if len(values) == 1 else (values[0], values[1])


def phase_padded_input(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], rows: int,
                       stride: int, width: int) -> np.ndarray:
    """x (N, C, H, W) zero-padded and channels-last, columns split into `stride` phases: the scratch
    array xp (N, rows, stride, width, C) with xp[n, r, ph, q, c] = x[n, c, r - top, q * stride + ph -
    left], 0 outside x.

        phase_padded_input(x, ((1, 1), (1, 1)), 58, 2, 29)   # 56x56 input, 3x3 stride 2 pad 1
    """
    n, c, h, w = x.shape
    (top, _), (left, _) = pads
    xp = scratch("depthwise padded input", (n, rows, stride, width, c), x.dtype)
    used = max(0, min(h, rows - top))  # the input rows some output reads (strides may skip the last)
    xp[:, :top] = 0
    xp[:, top + used:] = 0
    for phase in range(stride):
        lo, hi = valid_outputs(w, width, phase, stride, left)
        part = xp[:, top:top + used, phase]
        part[:, :, :lo] = 0
        part[:, :, hi:] = 0
        if lo < hi:
            first = lo * stride + phase - left
            columns = x[:, :, :used, first:first + (hi - lo - 1) * stride + 1:stride]
            part[:, :, lo:hi] = np.moveaxis(columns, 1, -1)
    return xp


def conv_depthwise_rows(conv: ConvOperands) -> np.ndarray:
    """The depthwise conv of `conv` (see rows_applicable) with its bias and epilogue, as (N, C, *out)."""
    x = conv.x if conv.x.ndim == 4 else conv.x[:, :, None, :]
    n, c = x.shape[:2]
    dtype = np.result_type(conv.x, conv.weight)
    x = x.astype(dtype, copy=False)
    kh, kw = _as_2d(conv.kernel, 1)
    sh, sw = _as_2d(conv.stride, 1)
    dh, dw = _as_2d(conv.dilation, 1)
    pads = tuple(tuple(p) for p in conv.node.attrs["padding"])
    pads2 = ((0, 0), pads[0]) if len(pads) == 1 else (pads[0], pads[1])
    oh, ow = _as_2d(conv.out_spatial, 1)
    rows = (oh - 1) * sh + (kh - 1) * dh + 1
    width = (kw - 1) * dw // sw + ow
    xp = phase_padded_input(x, pads2, rows, sw, width)
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    # tiled[t, q, c] = w[c, tap t] for every output column q: the multiply's operands are then all
    # contiguous over (q, c) (a broadcast weight would cut the inner loop to C elements).
    tiled = scratch("depthwise tiled taps", (len(taps), ow, c), dtype)
    tiled[...] = conv.weight.reshape(c, len(taps)).T.astype(dtype, copy=False)[:, None, :]
    out = np.empty((n, c, oh, ow), dtype)
    block = max(1, min(oh, BLOCK_BYTES // (ow * c * dtype.itemsize)))
    acc = scratch("depthwise sums", (block, ow, c), dtype)
    product = scratch("depthwise products", (block, ow, c), dtype)
    steps = conv.node.attrs["epilogue"]
    residuals = [r if r.ndim == 4 else r[:, :, None, :] for r in conv.residuals]
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as in torch
        for image in range(n):
            for r0 in range(0, oh, block):
                r1 = min(oh, r0 + block)
                sums, scratch_block = acc[:r1 - r0], product[:r1 - r0]
                for t, (i, j) in enumerate(taps):
                    column = j * dw
                    window = xp[image, r0 * sh + i * dh:(r1 - 1) * sh + i * dh + 1:sh, column % sw,
                                column // sw:column // sw + ow]
                    if t == 0:
                        np.multiply(window, tiled[0], out=sums)
                    else:
                        np.multiply(window, tiled[t], out=scratch_block)
                        sums += scratch_block
                as_nchw = np.moveaxis(sums, -1, 0)[None]  # (1, C, rows, ow), a view
                apply_epilogue(as_nchw, conv.bias, steps,
                               [r[image:image + 1, :, r0:r1] for r in residuals])
                out[image, :, r0:r1] = as_nchw[0]
    return out if conv.x.ndim == 4 else out[:, :, 0, :]

