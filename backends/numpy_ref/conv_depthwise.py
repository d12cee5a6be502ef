"""Depthwise convolution (groups == input channels, each channel filtered on its own): a sum over the
kernel taps of the input shifted by a constant offset times one weight per channel; no column matrix,
no GEMM.

The input is zero-padded once and flattened over its spatial axes, so that every tap (kd, kh, kw) reads
one evenly strided run of that flat array: the output at flat position q (in the padded input's pitches)
reads input s*q + offset(tap) for a uniform stride s. Each tap is then two NumPy calls over long runs
(multiply into a scratch array, add), whatever the kernel size; the positions q that fall in the padding
columns are computed too and cropped at the end.

    for each tap:  out[n, c*mult + j, q] += xp_flat[n, c, s*q + offset(tap)] * w[c*mult + j, 0, tap]

`mult` = out_channels / in_channels (1 in MobileNet, EfficientNet and ConvNeXt). Layers with many
more channels than output positions per image (late MobileNet stages: 960 channels of 7x7) run channels-last,
so NumPy's inner loop walks the channels rather than a short row.

    y = conv_depthwise(node, [x, w, b])     # node.attrs["groups"] == x.shape[1]
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from convc.ir import Node
from convc.ops import CONV_OPS

from convc.backends.numpy_ref.conv_operands import ConvOperands


# Channels-last when the channels outnumber the positions of one image this many times. Measured (1 thread,
# float32, 2026-12-01, shared 2-core VM): 960 channels of 7x7 (63 positions) ran 0.55 ms channels-last
# against 1.16 ms channel-major; 672 channels of 14x14 5x5 (252) ran 1.9 ms channel-major, 3.7 ms not.
CHANNELS_LAST_RATIO = 4


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


def _flat_padded(x: np.ndarray, pads: list[tuple[int, int]], length: int, channels_last: bool) -> np.ndarray:
    """The zero-padded input flattened over its spatial axes to at least `length` positions (whole
    extra zero slabs of the first spatial axis at the end): (N, C, positions) or, channels-last,
    (N, positions, C)."""
    n, c = x.shape[:2]
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads)]
    padded[0] = max(padded[0], -(-length // math.prod(padded[1:])))
    volume = np.zeros((n, *padded, c) if channels_last else (n, c, *padded), x.dtype)
    inside = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads))
    if channels_last:
        volume[(slice(None),) + inside] = np.moveaxis(x, 1, -1)
        return volume.reshape(n, -1, c)
    volume[(slice(None), slice(None)) + inside] = x
    return volume.reshape(n, c, -1)


def conv_depthwise(node: Node, args: list[Any]) -> np.ndarray:
    """conv1d/2d/3d with groups == C and out_channels == mult * C, tap by tap on one flat padded copy."""
    conv = ConvOperands.of(node, args)
    n, c = conv.x.shape[:2]
    mult = conv.weight.shape[0] // c
    pads = [tuple(p) for p in node.attrs["padding"]]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(conv.x.shape[2:], pads))
    pitches = tuple(math.prod(padded[i + 1:]) for i in range(len(padded)))
    # A uniform stride s reads s*q + offset; a mixed one (rare) is computed at stride 1 and subsampled.
    uniform = len(set(conv.stride)) == 1
    step = conv.stride[0] if uniform else 1
    grid = ((conv.out_spatial[0] if uniform else padded[0]),) + padded[1:]  # positions q, in pitch units
    positions = math.prod(grid)
    offsets = [sum(k * d * p for k, d, p in zip(tap, conv.dilation, pitches))
               for tap in np.ndindex(*conv.kernel)]
    length = step * (positions - 1) + max(offsets) + 1
    dtype = np.result_type(conv.x, conv.weight)
    channels_last = c * mult > CHANNELS_LAST_RATIO * positions
    xp = _flat_padded(conv.x.astype(dtype, copy=False), pads, length, channels_last)
    taps = conv.weight.reshape(c, mult, len(offsets)).astype(dtype, copy=False)
    shape = (n, positions, c, mult) if channels_last else (n, c, mult, positions)
    out = np.zeros(shape, dtype)
    product = np.empty_like(out)
    with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as in torch
        for i, offset in enumerate(offsets):
            run = slice(offset, offset + step * (positions - 1) + 1, step)
            if channels_last:  # (N, positions, C, 1) * (C, mult)
                np.multiply(xp[:, run, :, None], taps[:, :, i], out=product)
            else:  # (N, C, 1, positions) * (C, mult, 1)
                np.multiply(xp[:, :, None, run], taps[:, :, i, None], out=product)
            out += product
    if channels_last:
        out = np.moveaxis(out.reshape((n,) + grid + (c * mult,)), -1, 1)
    else:
        out = out.reshape((n, c * mult) + grid)
    if uniform:
        crop = tuple(slice(0, o) for o in conv.out_spatial)
    else:
        crop = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(conv.out_spatial, conv.stride))
    result = np.ascontiguousarray(out[(slice(None), slice(None)) + crop])
    return conv.finish(result)


KERNELS = {(op, "depthwise"): conv_depthwise for op in CONV_OPS}
