"""The compiled GEMM for narrow outputs, out = W @ X with few columns (N = 49 or 196 positions: the
14x14 and 7x7 maps of ResNet's last stages), the weight packed once. gemm_jit's tiles are 32 columns
wide, so 49 columns would waste 23% of their work; here the vectors run down the output channels
instead and a tile is 32 rows (two vectors) x 7 columns (one splat each), so 49 and 196 split whole.

    packed = pack_weight(w.reshape(m, k))               # once per layer (packed_gemm.py caches it)
    gemm(packed, m, x, out, bias, steps, residuals)     # out (m, n) = steps(W @ x + bias)

Per k the micro-kernel loads 32 packed weights (wp[panel, k, :]) and splats 7 values of X's packed
column panel (xp[panel, k, :]), 14 fused multiply-adds into 14 accumulators. Its sums are columns of
out, so the tile goes through a small scratch (tile[c, r]) and is written row by row, the bias (and a
ReLU that is the only step) added to its vectors first; other epilogue steps run on each finished
32-row panel, contiguous in out and still in the cache (a residual added value by value as the tile
was written measured 1.6x slower).
Loops: KC depth blocks (X's whole K x N block packed: N is small), 32-row weight panels (KC x 32 weights,
read once from memory per call and reused by every column panel from the cache), 7-column panels.
"""
from __future__ import annotations

import numpy as np
from convc.backends.numpy_ref import epilogue_jit, jit, simd
from convc.backends.numpy_ref.scratch import scratch

COLUMNS = 7  # columns per tile (49 = 7 x 7, 196 = 28 x 7); 14 accumulators
# Depth block: the whole K measured fastest (1 thread, 512 x 2048 x 49: 1.17 ms against 1.39 at 256 and
# 1.28 at 512): one pass writes out once, and the 32 x K weight panel (up to 576 KiB) serves the 7 column
# panels from L2.
KC = 1 << 30


def rows_per_tile(dtype: np.dtype) -> int:
    """32 for float32, 16 for float64: two vectors."""
    return 2 * simd.lanes_of(dtype)


def pack_weight(w: np.ndarray) -> np.ndarray:
    """(M, K) -> (ceil(M / R), K, R) panels of R = rows_per_tile rows, rows past M zero.

        pack_weight(np.ones((40, 3), np.float32)).shape   # (2, 3, 32)
    """
    m, k = w.shape
    r = rows_per_tile(w.dtype)
    panels = -(-m // r)
    rows = np.zeros((panels * r, k), w.dtype)
    rows[:m] = w
    return np.ascontiguousarray(rows.reshape(panels, r, k).transpose(0, 2, 1))


@jit.inline
def _tile(wp, w_at, xp, x_at, depth, out, tile):  # type: ignore[no-untyped-def]
    """tile[c, :] = sum over k < depth of wp.flat[w_at + k * R:][:R] * xp.flat[x_at + k * 7 + c], c < 7.
    Panels are whole (padded by the packing): unchecked reads (tests/backends/test_numpy_gemm.py)."""
    lanes = simd.lanes(out)
    a00 = simd.zeros(out)
    a01 = simd.zeros(out)
    a10 = simd.zeros(out)
    a11 = simd.zeros(out)
    a20 = simd.zeros(out)
    a21 = simd.zeros(out)
    a30 = simd.zeros(out)
    a31 = simd.zeros(out)
    a40 = simd.zeros(out)
    a41 = simd.zeros(out)
    a50 = simd.zeros(out)
    a51 = simd.zeros(out)
    a60 = simd.zeros(out)
    a61 = simd.zeros(out)
    for k in range(depth):
        w0 = simd.load_unchecked(wp, w_at + k * 2 * lanes)
        w1 = simd.load_unchecked(wp, w_at + k * 2 * lanes + lanes)
        x = x_at + k * 7
        b = simd.splat_unchecked(xp, x)
        a00 = simd.fma(w0, b, a00)
        a01 = simd.fma(w1, b, a01)
        b = simd.splat_unchecked(xp, x + 1)
        a10 = simd.fma(w0, b, a10)
        a11 = simd.fma(w1, b, a11)
        b = simd.splat_unchecked(xp, x + 2)
        a20 = simd.fma(w0, b, a20)
        a21 = simd.fma(w1, b, a21)
        b = simd.splat_unchecked(xp, x + 3)
        a30 = simd.fma(w0, b, a30)
        a31 = simd.fma(w1, b, a31)
        b = simd.splat_unchecked(xp, x + 4)
        a40 = simd.fma(w0, b, a40)
        a41 = simd.fma(w1, b, a41)
        b = simd.splat_unchecked(xp, x + 5)
        a50 = simd.fma(w0, b, a50)
        a51 = simd.fma(w1, b, a51)
        b = simd.splat_unchecked(xp, x + 6)
        a60 = simd.fma(w0, b, a60)
        a61 = simd.fma(w1, b, a61)
    simd.store(tile, 0 * 2 * lanes, a00)
    simd.store(tile, 0 * 2 * lanes + lanes, a01)
    simd.store(tile, 1 * 2 * lanes, a10)
    simd.store(tile, 1 * 2 * lanes + lanes, a11)
    simd.store(tile, 2 * 2 * lanes, a20)
    simd.store(tile, 2 * 2 * lanes + lanes, a21)
    simd.store(tile, 3 * 2 * lanes, a30)
    simd.store(tile, 3 * 2 * lanes + lanes, a31)
    simd.store(tile, 4 * 2 * lanes, a40)
    simd.store(tile, 4 * 2 * lanes + lanes, a41)
    simd.store(tile, 5 * 2 * lanes, a50)
    simd.store(tile, 5 * 2 * lanes + lanes, a51)
    simd.store(tile, 6 * 2 * lanes, a60)
    simd.store(tile, 6 * 2 * lanes + lanes, a61)


@jit.inline
def _pack_columns(x, k0, depth, xp):  # type: ignore[no-untyped-def]
    """xp[panel, k, c] = x[k0 + k, panel * 7 + c] for k < depth, 0 past x's columns."""
    n = x.shape[1]
    panels = (n + COLUMNS - 1) // COLUMNS
    for panel in range(panels):
        base = panel * depth * COLUMNS
        first = panel * COLUMNS
        cols = min(COLUMNS, n - first)
        for k in range(depth):
            row = x[k0 + k]
            for c in range(cols):
                xp[base + k * COLUMNS + c] = row[first + c]
            for c in range(cols, COLUMNS):
                xp[base + k * COLUMNS + c] = 0


@jit.kernel
def narrow_kernel(wp, m, x, out, bias, xp, tile, block_depth,  # type: ignore[no-untyped-def]
                  res0, res1, codes, params, single, lone_relu):
    """out (m, n) = epilogue(W @ x + bias), W packed by pack_weight in wp; xp: scratch of at least
    block_depth * ceil(n / 7) * 7 elements, tile: 7 * R. codes/params/res0/res1 as epilogue_jit's
    apply_steps takes them: a `lone_relu` (codes is one RELU) on the tile's vectors, any other steps on
    each finished panel of 32 rows (contiguous in out, still in the cache)."""
    k_total, n = x.shape
    lanes = simd.lanes(out)
    r_tile = 2 * lanes
    flat = out.reshape(-1)
    panels = (n + COLUMNS - 1) // COLUMNS
    for k0 in range(0, k_total, block_depth):
        depth = min(block_depth, k_total - k0)
        _pack_columns(x, k0, depth, xp)
        last = k0 + depth == k_total
        vector_relu = last and lone_relu and k0 == 0  # else earlier blocks' sums must come in first
        for row in range(0, m, r_tile):
            rows = min(r_tile, m - row)
            w_at = (row * k_total + k0 * r_tile)
            b0 = simd.zeros(out)
            b1 = simd.zeros(out)
            if last and bias.size:
                b0 = simd.load_partial(bias, row, min(rows, lanes))
                if rows > lanes:
                    b1 = simd.load_partial(bias, row + lanes, rows - lanes)
            for panel in range(panels):
                first = panel * COLUMNS
                cols = min(COLUMNS, n - first)
                _tile(wp, w_at, xp, panel * depth * COLUMNS, depth, out, tile)
                if last:  # the bias (one value per row: a vector down the tile's column)
                    for c in range(cols):
                        v0 = simd.add(simd.load(tile, c * r_tile), b0)
                        v1 = simd.add(simd.load(tile, c * r_tile + lanes), b1)
                        if vector_relu:
                            v0 = simd.max_nan(v0, simd.zeros(out))
                            v1 = simd.max_nan(v1, simd.zeros(out))
                        simd.store(tile, c * r_tile, v0)
                        simd.store(tile, c * r_tile + lanes, v1)
                for r in range(rows):
                    at = (row + r) * n + first
                    if k0 == 0:
                        for c in range(cols):
                            flat[at + c] = tile[c * r_tile + r]
                    else:
                        for c in range(cols):
                            flat[at + c] += tile[c * r_tile + r]
            if last and codes.size and not vector_relu:
                start, stop = row * n, (row + rows) * n
                epilogue_jit.apply_steps(flat[start:stop], res0[start:stop] if res0.size else res0,
                                         res1[start:stop] if res1.size else res1, codes, params, single)


def gemm(packed: np.ndarray, m: int, x: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None,
         steps: tuple = (), residuals: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """out (m, n) = steps(W @ x + bias), W packed by pack_weight, x (K, N) and out C-contiguous of one
    dtype (float32 or float64, numba enabled), at most two residuals of out's shape. Returns out.

        out = gemm(pack_weight(w), len(w), x, np.empty((len(w), x.shape[1]), x.dtype))
    """
    dtype = out.dtype
    k, n = x.shape
    depth = min(KC, k)
    xp = scratch("gemm narrow packed columns", (depth * -(-n // COLUMNS) * COLUMNS,), dtype)
    tile = scratch("gemm narrow tile", (COLUMNS * rows_per_tile(dtype),), dtype)
    fused, codes, params, res0, res1 = epilogue_jit.kernel_epilogue(tuple(steps), residuals, dtype)
    assert fused, "gemm takes at most two residuals"
    lone_relu = tuple(steps) == (("relu",),)
    empty = np.empty(0, dtype)
    narrow_kernel(packed, m, x, out, empty if bias is None else np.ascontiguousarray(bias, dtype), xp, tile,
                  KC, res0, res1, codes, params, dtype == np.float32, lone_relu)
    return out


__all__ = ["COLUMNS", "KC", "gemm", "narrow_kernel", "pack_weight"]
