"""Depthwise convolution (groups == input channels, each channel filtered on its own): a sum over the
kernel taps of the input shifted by a constant offset times one weight per channel; no column matrix,
no GEMM.

Two layouts, chosen per layer by the size of the output map (measured, see CHANNELS_LAST_BELOW):

- small maps (MobileNet's 7x7 to 28x28 stages): channels-last, block by block of output rows
  (conv_depthwise_rows.py), NumPy's inner loops running over the channels;
- large maps and everything else (3D, channel multipliers): channel-major here, a few channels at a
  time, on a zero-padded polyphase copy of those channels.

The polyphase copy splits every spatial axis of stride s into s phases (position q*s + phase), so that
each tap (kd, kh, kw) reads one phase at a constant offset with unit stride: over the copy flattened
per channel, a tap is one contiguous run. Per block of channels (about 1 MiB, mostly in the L2 cache):

    sums  = run(tap 0) * w[:, tap 0]                       # written, not zeros + add
    sums += run(tap) * w[:, tap]      for every other tap  (a multiply into scratch, an add)
    out[n, channels] = crop(sums); epilogue on it          # while it is still in cache

`mult` = out_channels / in_channels filters per channel (1 in MobileNet, EfficientNet and ConvNeXt).
The padding is real zeros: a non-finite weight meeting it gives NaN, as in torch (0 * inf).

    y = conv_depthwise(node, [x, w, b])     # node.attrs["groups"] == x.shape[1]
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from convc.backends.numpy_ref import jit
from convc.backends.numpy_ref.conv_depthwise_jit import conv_depthwise_jit, jit_applicable
from convc.backends.numpy_ref.conv_depthwise_rows import conv_depthwise_rows, rows_applicable
from convc.backends.numpy_ref.conv_depthwise_simd import conv_depthwise_simd, simd_applicable
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue import apply_epilogue
from convc.backends.numpy_ref.scratch import scratch
from convc.backends.numpy_ref.windows import valid_outputs

from convc.ir import Node
from convc.ops import CONV_OPS

# Channels-last below this many output positions per image. Measured (1 thread, float32, 2026-12-01,
# shared 2-core EPYC, ms channel-major / channels-last): 112x112 outputs 1.19 / 1.81 (32 channels), 56x56
# 1.58 / 1.90 (144, 3x3) and 4.18 / 5.14 (96, 7x7); 28x28 0.94 / 0.76 (192), 0.90 / 0.81 (144, stride
# 2), 14x14 0.58 / 0.47 (384), 2.33 / 1.49 (672, 5x5), 7x7 0.53 / 0.35 (960).
CHANNELS_LAST_BELOW = 2048

# Bytes of one block of channels' sums (and as much again for the products). Measured (1 thread,
# float32, 2026-12-01, 21 alternating rounds): 1 MiB against 256 KiB took 0.76-0.99x the time on 112x112
# and 56x56 outputs (fewer NumPy calls; the blocks still mostly hit the 2 MiB L2), 1.06x on one
# (96 channels, 112x112 stride 2: four phases per channel in the padded copy).
BLOCK_BYTES = 1 << 20

# One filter per channel runs register-blocked (conv_depthwise_simd.py) where numba runs: faster than
# conv_depthwise_jit.py's planes and channels-last loops on every MobileNet, EfficientNet and ConvNeXt
# layer measured (bench/NOTES.md, dwsimd). False runs those instead (the tests cover both).
REGISTER_BLOCKED = True


def is_depthwise(groups: int, in_channels: int, out_channels: int) -> bool:
    """Every input channel is a group of its own, with a whole number of filters each."""
    return groups == in_channels and out_channels % in_channels == 0


def depthwise_problem(node: Node, in_channels: int) -> str | None:
    """Why `node` cannot run as a depthwise conv, or None if it can."""
    a = node.attrs
    if is_depthwise(a["groups"], in_channels, a["out_channels"]):
        return None
    return (f"node '{node.name}': conv algorithm 'depthwise' needs groups equal to the {in_channels} input "
            f"channels and out_channels a multiple of them; got groups={a['groups']}, "
            f"out_channels={a['out_channels']}; use 'direct' or 'im2col'")


def polyphase_padded(x: np.ndarray, pads: list[tuple[int, int]], stride: tuple[int, ...],
                     sizes: tuple[int, ...], into: np.ndarray) -> np.ndarray:
    """x (C, *spatial) zero-padded, each axis split into its stride's phases: into[c, *phases, *q] =
    x[c, q*stride + phase - low_pad per axis], 0 outside x; `into` is (C, *stride, *sizes).

        polyphase_padded(x, [(1, 1), (1, 1)], (2, 2), (57, 57), buf)   # 112x112, 3x3 stride 2 pad 1
    """
    every = (slice(None),)
    for phases in itertools.product(*(range(s) for s in stride)):
        part = into[every + phases]
        ranges = [valid_outputs(size, q, ph, s, lo) for size, q, ph, s, (lo, _)
                  in zip(x.shape[1:], sizes, phases, stride, pads)]
        for axis, ((lo, hi), q) in enumerate(zip(ranges, sizes)):
            before = every + (slice(None),) * axis
            part[before + (slice(0, lo),)] = 0
            part[before + (slice(hi, q),)] = 0
        if all(lo < hi for lo, hi in ranges):
            source = tuple(slice(lo * s + ph - p, (hi - 1) * s + ph - p + 1, s) for (lo, hi), s, ph, (p, _)
                           in zip(ranges, stride, phases, pads))
            part[every + tuple(slice(lo, hi) for lo, hi in ranges)] = x[every + source]
    return into


def conv_depthwise_channel_major(conv: ConvOperands) -> np.ndarray:
    """Any depthwise conv (1D/2D/3D, stride, dilation, padding, channel multiplier), channel-major."""
    n, c = conv.x.shape[:2]
    mult = conv.weight.shape[0] // c
    dtype = np.result_type(conv.x, conv.weight)
    out_spatial = conv.out_spatial
    # Tap t reads phase (t*d) % s at shift (t*d) // s along each axis: the phase grids need the output
    # size plus the largest shift.
    sizes = tuple(o + (k - 1) * d // s for o, k, d, s in zip(out_spatial, conv.kernel, conv.dilation,
                                                              conv.stride))
    pitches = tuple(math.prod(sizes[i + 1:]) for i in range(len(sizes)))
    run = sum((o - 1) * p for o, p in zip(out_spatial, pitches)) + 1  # first to last output, flat
    taps = [(tuple(t * d % s for t, d, s in zip(tap, conv.dilation, conv.stride)),
             sum(t * d // s * p for t, d, s, p in zip(tap, conv.dilation, conv.stride, pitches)))
            for tap in np.ndindex(*conv.kernel)]
    weights = conv.weight.reshape(c, mult, len(taps)).astype(dtype, copy=False)
    grid = math.prod(sizes)
    block = max(1, min(c, BLOCK_BYTES // (mult * grid * dtype.itemsize)))
    phased = scratch("depthwise polyphase input", (block,) + conv.stride + sizes, dtype)
    sums = scratch("depthwise sums", (block, mult, grid), dtype)
    product = scratch("depthwise products", (block, mult, run), dtype)
    out = np.empty(conv.out_shape, dtype)
    pads = [tuple(p) for p in conv.node.attrs["padding"]]
    crop = (slice(None),) + tuple(slice(0, o) for o in out_spatial)
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as in torch
        for image in range(n):
            for c0 in range(0, c, block):
                m = min(c, c0 + block) - c0
                xp = polyphase_padded(conv.x[image, c0:c0 + m].astype(dtype, copy=False), pads,
                                      conv.stride, sizes, phased[:m])
                flat = xp.reshape((m,) + (math.prod(conv.stride),) + (grid,))
                strides = conv.stride
                acc = sums[:m, :, :run]
                for t, (phase, offset) in enumerate(taps):
                    index = int(np.ravel_multi_index(phase, strides)) if strides else 0
                    source = flat[:, None, index, offset:offset + run]  # (m, 1, run)
                    if t == 0:
                        np.multiply(source, weights[c0:c0 + m, :, t, None], out=acc)
                    else:
                        np.multiply(source, weights[c0:c0 + m, :, t, None], out=product[:m])
                        acc += product[:m]
                channels = slice(c0 * mult, (c0 + m) * mult)
                target = out[image:image + 1, channels]
                target[0] = sums[:m].reshape((m * mult,) + sizes)[crop]
                apply_epilogue(target, None if conv.bias is None else conv.bias[channels],
                               conv.node.attrs["epilogue"],
                               [r[image:image + 1, channels] for r in conv.residuals])
    return out


def conv_depthwise(node: Node, args: list[Any]) -> np.ndarray:
    """conv1d/2d/3d with groups == C and out_channels == mult * C: compiled where numba runs, for 1D/2D
    (register-blocked, conv_depthwise_simd.py, with one filter per channel; conv_depthwise_jit.py with
    several); else channels-last on small output maps (1D/2D, one filter per channel), channel-major
    otherwise."""
    conv = ConvOperands.of(node, args)
    if REGISTER_BLOCKED and simd_applicable(conv):
        return conv_depthwise_simd(conv)
    if jit.enabled() and jit_applicable(conv):
        return conv_depthwise_jit(conv)
    if rows_applicable(conv) and math.prod(conv.out_spatial) < CHANNELS_LAST_BELOW:
        return conv_depthwise_rows(conv)
    return conv_depthwise_channel_major(conv)


KERNELS = {(op, "depthwise"): conv_depthwise for op in CONV_OPS}
