"""Winograd's input and output transforms as compiled loops (numba, through jit.py), each one pass:

    winograd_input_(x, tile, pad_h, pad_w, consts, v)    # NCHW x -> v[a, b, c, n, th, tw] = (Bᵀ d B)[a, b]
    winograd_output_(m, tile, bias, relu, consts, out)   # m[a, b, k, n, th, tw] -> NCHW Aᵀ M A + bias

The NumPy path (conv_winograd.py) makes four trips through memory before its channel GEMMs (a padded
copy, the overlapping-tile gather, two transform GEMMs) and three after (two transform GEMMs, the
permutation back to NCHW with the bias, the epilogue's ReLU). Here, per channel, the input side reads
each input row once per tile row it belongs to (zeros past the border: no padded copy), applies Bᵀ
along the row, then down the tile columns, and writes V; the output side applies Aᵀ down, then along
the row, adds the bias, applies a leading ReLU and stores the part of each tile inside the output.

The 1-D transforms are written out as their adds and multiplies (F(4x4): 12 multiplies and 26 adds
per 6 inputs on the way in, where a dense 6 x 6 matrix takes 36 multiply-adds), and every loop runs
over the tiles of one channel, contiguous in V and M, so the compiler vectorizes it. The constants 2,
4, 5 and 8 come in `consts` (the working dtype), so float32 arithmetic stays float32 (numba would
widen an int literal times float32 to float64). The channel GEMMs between the two sides stay np.matmul.

Numerics: the products and sums of the transform matrices, in the working dtype; NaN and inf spread
through a tile as convc/nonfinite.py's Winograd contract allows, never lost.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from convc.backends.numpy_ref import jit

CONSTANTS = (2, 4, 5, 8)  # `consts`: the transform matrices' integer entries, in the working dtype


@jit.kernel
def winograd_input_(x: np.ndarray, tile: int, pad_h: int, pad_w: int, consts: np.ndarray,
                    v: np.ndarray) -> None:
    """v[a, b, c, n, th, tw] = (Bᵀ d B)[a, b] for d[i, j] = x[n, c, th*tile + i - pad_h, tw*tile + j -
    pad_w] (0 outside x); x (N, C, H, W) and v (span, span, C, N, TH, TW) C-contiguous, tile 2 or 4."""
    batch, channels, height, width = x.shape
    span = tile + 2
    tiles_h, tiles_w = v.shape[4], v.shape[5]
    plane = tiles_h * tiles_w
    c2, c4, c5 = consts[0], consts[1], consts[2]
    zero = c2 - c2
    line = np.zeros(tiles_w * tile + 2, x.dtype)  # one input row, zero-padded at both ends
    rows = np.empty((span, span, plane), x.dtype)  # (d B)[i, b, tile]: Bᵀ applied along each row
    out = v.reshape(span, span, channels, batch, plane)
    for c in range(channels):
        for n in range(batch):
            for th in range(tiles_h):
                for i in range(span):
                    r = th * tile + i - pad_h
                    if r < 0 or r >= height:
                        for b in range(span):
                            rows[i, b, th * tiles_w:(th + 1) * tiles_w] = zero
                        continue
                    for q in range(line.size):
                        col = q - pad_w
                        line[q] = x[n, c, r, col] if col >= 0 and col < width else zero
                    dst = rows[i]
                    for t in range(tiles_w):
                        p, q = t * tile, th * tiles_w + t
                        if tile == 4:
                            d0, d1, d2, d3, d4, d5 = line[p], line[p + 1], line[p + 2], line[p + 3], \
                                line[p + 4], line[p + 5]
                            dst[0, q] = c4 * d0 - c5 * d2 + d4
                            dst[1, q] = d3 + d4 - c4 * (d1 + d2)
                            dst[2, q] = d4 - d3 + c4 * (d1 - d2)
                            dst[3, q] = d4 - d2 + c2 * (d3 - d1)
                            dst[4, q] = d4 - d2 + c2 * (d1 - d3)
                            dst[5, q] = d5 + c4 * d1 - c5 * d3
                        else:
                            d0, d1, d2, d3 = line[p], line[p + 1], line[p + 2], line[p + 3]
                            dst[0, q] = d0 - d2
                            dst[1, q] = d1 + d2
                            dst[2, q] = d2 - d1
                            dst[3, q] = d1 - d3
            for b in range(span):  # Bᵀ down the columns: all tiles of the channel in one run
                if tile == 4:
                    _bt4_columns(rows[0, b], rows[1, b], rows[2, b], rows[3, b], rows[4, b], rows[5, b],
                                 out[0, b, c, n], out[1, b, c, n], out[2, b, c, n], out[3, b, c, n],
                                 out[4, b, c, n], out[5, b, c, n], c2, c4, c5)
                else:
                    _bt2_columns(rows[0, b], rows[1, b], rows[2, b], rows[3, b],
                                 out[0, b, c, n], out[1, b, c, n], out[2, b, c, n], out[3, b, c, n])


@jit.inline
def _bt4_columns(d0: np.ndarray, d1: np.ndarray, d2: np.ndarray, d3: np.ndarray, d4: np.ndarray,
                 d5: np.ndarray, o0: np.ndarray, o1: np.ndarray, o2: np.ndarray, o3: np.ndarray,
                 o4: np.ndarray, o5: np.ndarray, c2: float, c4: float, c5: float) -> None:
    for q in range(d0.size):
        a0, a1, a2, a3, a4, a5 = d0[q], d1[q], d2[q], d3[q], d4[q], d5[q]
        o0[q] = c4 * a0 - c5 * a2 + a4
        o1[q] = a3 + a4 - c4 * (a1 + a2)
        o2[q] = a4 - a3 + c4 * (a1 - a2)
        o3[q] = a4 - a2 + c2 * (a3 - a1)
        o4[q] = a4 - a2 + c2 * (a1 - a3)
        o5[q] = a5 + c4 * a1 - c5 * a3


@jit.inline
def _bt2_columns(d0: np.ndarray, d1: np.ndarray, d2: np.ndarray, d3: np.ndarray,
                 o0: np.ndarray, o1: np.ndarray, o2: np.ndarray, o3: np.ndarray) -> None:
    for q in range(d0.size):
        a0, a1, a2, a3 = d0[q], d1[q], d2[q], d3[q]
        o0[q] = a0 - a2
        o1[q] = a1 + a2
        o2[q] = a2 - a1
        o3[q] = a1 - a3


@jit.kernel
def winograd_output_(m: np.ndarray, tile: int, bias: np.ndarray, relu: bool, consts: np.ndarray,
                     out: np.ndarray) -> None:
    """out[n, k, th*tile + i, tw*tile + j] = (Aᵀ M A)[i, j] + bias[k], then ReLU (NaN kept) when
    `relu`, for M = m[:, :, k, n, th, tw], where that lies inside out; m (span, span, K, N, TH, TW) and
    out (N, K, H, W) C-contiguous, bias K values (zeros for a conv without one), tile 2 or 4."""
    span = tile + 2
    channels, batch, tiles_h, tiles_w = m.shape[2], m.shape[3], m.shape[4], m.shape[5]
    height, width = out.shape[2], out.shape[3]
    plane = tiles_h * tiles_w
    c2, c4, c8 = consts[0], consts[1], consts[3]
    zero = c2 - c2
    products = m.reshape(span, span, channels, batch, plane)
    cols = np.empty((tile, span, plane), m.dtype)  # (Aᵀ M)[i, b, tile]: Aᵀ applied down the columns
    line = np.empty(tiles_w * tile, m.dtype)  # one output row of the tile row, before the crop
    for k in range(channels):
        for n in range(batch):
            for b in range(span):
                src = products[:, b, k, n]
                for q in range(plane):
                    a0, a1, a2, a3 = src[0, q], src[1, q], src[2, q], src[3, q]
                    if tile == 4:
                        a4, a5 = src[4, q], src[5, q]
                        cols[0, b, q] = a0 + a1 + a2 + a3 + a4
                        cols[1, b, q] = a1 - a2 + c2 * (a3 - a4)
                        cols[2, b, q] = a1 + a2 + c4 * (a3 + a4)
                        cols[3, b, q] = a5 + a1 - a2 + c8 * (a3 - a4)
                    else:
                        cols[0, b, q] = a0 + a1 + a2
                        cols[1, b, q] = a1 - a2 - a3
            shift = bias[k]
            for th in range(tiles_h):
                for i in range(min(tile, height - th * tile)):
                    src = cols[i]
                    for t in range(tiles_w):  # Aᵀ along the row, + bias
                        q, p = th * tiles_w + t, t * tile
                        a0, a1, a2, a3 = src[0, q], src[1, q], src[2, q], src[3, q]
                        if tile == 4:
                            a4, a5 = src[4, q], src[5, q]
                            line[p] = a0 + a1 + a2 + a3 + a4 + shift
                            line[p + 1] = a1 - a2 + c2 * (a3 - a4) + shift
                            line[p + 2] = a1 + a2 + c4 * (a3 + a4) + shift
                            line[p + 3] = a5 + a1 - a2 + c8 * (a3 - a4) + shift
                        else:
                            line[p] = a0 + a1 + a2 + shift
                            line[p + 1] = a1 - a2 - a3 + shift
                    dst = out[n, k, th * tile + i]
                    if relu:
                        for col in range(width):
                            value = line[col]
                            dst[col] = value if not value < 0 else zero  # NaN stays NaN
                    else:
                        for col in range(width):
                            dst[col] = line[col]


def probe_input(dtype: str, tile: int, channels: int, size: int) -> Callable[[], None]:
    """One call of winograd_input_ on a random (1, channels, size, size) map with padding 1, ready to
    time: the NumPy backend's calibration probe (Backend.probes), which passes/cpu_profile.py times."""
    dt = np.dtype(dtype)
    tiles = math.ceil(size / tile)
    x = np.random.default_rng(0).standard_normal((1, channels, size, size)).astype(dt)
    v = np.empty((tile + 2, tile + 2, channels, 1, tiles, tiles), dt)
    consts = np.asarray(CONSTANTS, dt)
    return lambda: winograd_input_(x, tile, 1, 1, consts, v)


def probe_output(dtype: str, tile: int, channels: int, size: int) -> Callable[[], None]:
    """One call of winograd_output_ (bias and ReLU) into a (1, channels, size, size) map, ready to time."""
    dt = np.dtype(dtype)
    tiles = math.ceil(size / tile)
    m = np.random.default_rng(0).standard_normal((tile + 2, tile + 2, channels, 1, tiles, tiles)).astype(dt)
    out, bias = np.empty((1, channels, size, size), dt), np.zeros(channels, dt)
    consts = np.asarray(CONSTANTS, dt)
    return lambda: winograd_output_(m, tile, bias, True, consts, out)


PROBES = {"winograd_input": probe_input, "winograd_output": probe_output}
