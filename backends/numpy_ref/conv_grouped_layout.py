"""The operands of the register-blocked grouped 3x3 kernel (conv_grouped_simd.py) in its layouts: where
each tap reads its input (Geometry: column-shifted copies at stride 1, stride phases otherwise), the
stride-1 copies (fill_shifted), and the weights packed once per layer in blocks of output channels.

    at = Geometry.of((14, 14), (1, 1), (1, 1), np.float32, in_group=48)   # at.starts, at.run, at.chunk
    wp = packed_weights(weight, groups, np.float32)                        # (G, B, Cg, 9, R), cached
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convc.backends.numpy_ref import jit, packed_cache, simd
from convc.backends.numpy_ref.conv_depthwise_jit import RUN_MULTIPLE, inside

# Output channels per block (the weight splats of one step) and vectors of positions per run (the input
# loads of one step): R * V = 16 accumulators, plus V inputs and a splat, of the 32 vector registers.
R = 4
V = 4

# Stride-1 layers with outputs up to this wide read their input as three column-shifted copies, so the
# positions run densely over the plane: on 14x14 maps 208 positions computed instead of 224 wide ones,
# 0.80-0.96 of the wide layout's time on RegNet layers; 28x28 0.93; 7x7 0.92-0.98. On 56x56 (3% of
# dead columns) the copies' triple footprint cost as much as they saved (0.99-1.07; bench/NOTES.md,
# grouped).
DENSE_UP_TO = 32

# The input a chunk of positions reads, kept in the L2 cache (1 MiB a core on Zen 4) while every block
# of output channels passes over it. Only the widest, largest layers have more: RegNet-X 32GF's 336 x
# 112 x 112 stride 2 (groups of 168, 8.7 MB of phased input a group) ran 34 ms in chunks of 256 KiB, 36-38
# in larger ones or none; elsewhere the chunk size changed nothing measurable (bench/NOTES.md, grouped).
CHUNK_BYTES = 256 << 10


@jit.inline
def fill_shifted(plane: np.ndarray, copies: np.ndarray, rows: int, out_w: int, dil_w: int, top: int,
                 left: int) -> None:
    """Stride 1: copies[(j * rows + q) * out_w + x] = plane[q - top, x + j * dw - left] for the three
    kernel columns j, where that is inside the plane (the rest, the padding, is left as it is: zeros),
    a vector (partial at a row's end) at a time."""
    height, width = plane.shape
    lanes = simd.lanes(copies)
    for j in range(3):
        first = j * dil_w - left
        lo, hi = inside(width, out_w, first, 1)
        for q in range(max(0, top), min(rows, height + top)):
            source = (q - top) * width + lo + first
            target = (j * rows + q) * out_w + lo
            for x in range(0, hi - lo, lanes):
                # a whole-vector store (a masked one costs ~10 ns on Zen 4): its lanes past the row
                # are zeros, landing on padding or on the next row, written after this one
                count = min(lanes, hi - lo - x)
                simd.store(copies, target + x, simd.load_partial(plane, source + x, count))


def pack_weights(weight: np.ndarray, groups: int, dtype: np.dtype) -> np.ndarray:
    """weight (K, Cg, 3, 3) as (G, B, Cg, 9, R): per group, blocks of R output channels, each (channel,
    tap) step's R values adjacent; output channels past Kg (the last block's padding) zero.

        pack_weights(np.ones((8, 2, 3, 3)), 2, np.float32).shape   # (2, 1, 2, 9, 4)
    """
    k_out, in_group = weight.shape[:2]
    out_group = k_out // groups
    blocks = -(-out_group // R)
    padded = np.zeros((groups, blocks * R, in_group, 9), dtype)
    padded[:, :out_group] = weight.reshape(groups, out_group, in_group, 9)
    return np.ascontiguousarray(padded.reshape(groups, blocks, R, in_group, 9).transpose(0, 1, 3, 4, 2))


def packed_weights(weight: np.ndarray, groups: int, dtype: np.dtype) -> np.ndarray:
    """pack_weights(weight, groups, dtype), computed on the first call for this weight array and kept
    while the array lives and is unchanged (packed_cache.py): a layer packs its weights once."""
    return packed_cache.packed(weight, ("grouped", np.dtype(dtype).str, groups),
                               lambda w: pack_weights(w, groups, dtype))


@dataclass(frozen=True)
class Geometry:
    """Where the kernel reads: per input channel a copy of `channel` elements, tap t of output position
    f at starts[t] + f, for f < run (whole vectors). Stride 1 up to DENSE_UP_TO columns (dense): three
    column-shifted copies of grid_h = OH + 2 dh rows of grid_w = OW columns, f = y * OW + x over the
    plane alone. Otherwise
    (wide): the stride phases of a zero-padded grid_h x grid_w grid, f = y * grid_w + x over wide rows
    of grid_w = OW + 2 dw // sw columns. Then slack; `chunk` positions (whole runs of 4 vectors) per chunk.

        Geometry.of((14, 14), (1, 1), (1, 1), np.float32).run   # 208: the 196 positions in 16s
        Geometry.of((14, 14), (2, 2), (1, 1), np.float32).run   # 224: 13 rows of 15, then 14, in 16s
    """
    dense: bool
    grid_h: int
    grid_w: int
    channel: int
    run: int
    starts: np.ndarray
    chunk: int

    @staticmethod
    def of(out_spatial: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
           dtype: np.dtype | type, in_group: int = 1) -> Geometry:
        (out_h, out_w), (sh, sw), (dh, dw) = out_spatial, stride, dilation
        dense = sh == sw == 1 and out_w <= DENSE_UP_TO
        if dense:
            grid_h, grid_w = out_h + 2 * dh, out_w
            starts = np.array([j * grid_h * grid_w + i * dh * grid_w for i in range(3) for j in range(3)])
            copies = 3
        else:
            grid_h, grid_w = out_h + 2 * dh // sh, out_w + 2 * dw // sw
            starts = np.array([((i * dh % sh) * sw + j * dw % sw) * grid_h * grid_w
                               + (i * dh // sh) * grid_w + j * dw // sw for i in range(3) for j in range(3)])
            copies = sh * sw
        lanes = simd.lanes_of(dtype)
        run = ((out_h - 1) * grid_w + out_w + lanes - 1) // lanes * lanes
        # positions per chunk: their reads (in_group channels x the copies x the chunk and two grid
        # rows) fit in CHUNK_BYTES
        step = V * lanes
        per_channel = CHUNK_BYTES // (in_group * copies * np.dtype(dtype).itemsize) - 2 * dh * grid_w - 2 * dw
        chunk = max(step, per_channel // step * step)
        return Geometry(dense, grid_h, grid_w, copies * grid_h * grid_w + RUN_MULTIPLE, run, starts, chunk)

    def last_read(self) -> int:
        """The highest offset into one channel's copy the kernel's unchecked loads read."""
        return int(self.starts.max()) + self.run - 1
