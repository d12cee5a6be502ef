"""A compiled GEMM for convolutions, out = W @ X, with the weight packed once: a register-blocked
micro-kernel (simd.py) under a cache-blocked driver, the bias and the fused epilogue applied on the
output while it is still in the cache.

    packed = pack_weight(w.reshape(m, k))               # once per layer (packed_gemm.py caches it)
    gemm(packed, m, x, out, bias, steps, residuals)     # out (m, n) = steps(W @ x + bias)

Shapes: W (M, K) (output channels x input channels times kernel taps), X (K, N) (N output positions),
out (M, N), all C-contiguous (NCHW: one image's output is its (C_out, H * W) matrix).

Tiles. The micro-kernel computes an MR x NR tile of out (MR = 8 rows, NR = two vectors = 32 float32
columns) in 16 vector accumulators over a range of k: per k it loads two vectors of X's packed panel,
splats MR weights and does 16 fused multiply-adds, all in registers. Packed operands make every read
sequential:
- the weight as MR-row panels, wp[panel, k, r] = W[panel * MR + r, k] (rows past M are zero), packed
  once per layer: BLAS packs it again on every call (a trip to memory per GEMM, as the weights of a
  whole network outgrow the caches); onnxruntime's MLAS also packs weights once.
- X per call, one KC x NC block at a time, as NR-column panels xp[panel, k, c] = X[k0 + k, n0 + panel *
  NR + c] (columns past N are zero), the block sized to stay in the L2 cache (BLOCK_BYTES).
Loops (outer to inner): NC column blocks, KC depth blocks (pack X's block), MR-row weight panels (8 x KC
weights: stays in L1), NR-column panels of the block (streamed from L2), the micro-kernel. The first KC
block stores its sums, later ones add to them; the last one adds the bias in registers, and after each
row panel of an NC block is complete its 8 x NC outputs get the epilogue steps (epilogue_jit.apply_steps)
while they are in the cache. Edges: zero rows and columns in the packing, partial stores at the right
and bottom borders, so any M, N, K >= 1 works.
"""
from __future__ import annotations

import numpy as np
from convc.backends.numpy_ref import epilogue_jit, jit, simd
from convc.backends.numpy_ref.epilogue_jit import ADD0, RELU
from convc.backends.numpy_ref.scratch import scratch

MR = 8  # output rows (channels) per micro-tile: 8 x 2 accumulators + 2 panel vectors of 32 registers
VECTORS = 2  # vectors of columns per micro-tile: NR = VECTORS * lanes
BLOCK_BYTES = 384 << 10  # X's packed KC x NC block: within the 1 MiB L2 with a block of weights
ROW_PANELS = 1  # weight panels multiplied by each X panel while it is in L1
KC = 256  # depth of a block: the 8 x KC weight micro-panel (8 KiB of float32) stays in L1


def columns_per_tile(dtype: np.dtype) -> int:
    """NR: 32 for float32, 16 for float64."""
    return VECTORS * simd.lanes_of(dtype)


def pack_weight(w: np.ndarray) -> np.ndarray:
    """(M, K) -> (ceil(M / MR), K, MR) micro-kernel panels, rows past M zero.

        pack_weight(np.arange(6.).reshape(2, 3))[0, :, :2]   # [[0, 3], [1, 4], [2, 5]]
    """
    m, k = w.shape
    panels = -(-m // MR)
    packed = np.zeros((panels, k, MR), w.dtype)
    rows = np.zeros((panels * MR, k), w.dtype)
    rows[:m] = w
    packed[...] = rows.reshape(panels, MR, k).transpose(0, 2, 1)
    return packed


@jit.inline
def _store_row(out, at, v0, v1, cols, accumulate, last, res0, res1, codes):  # type: ignore[no-untyped-def]
    """Writes one tile row (two vectors) at out.flat[at:], adding to what is there when `accumulate`;
    only the first `cols` columns at the right border. On the `last` depth block, the in-tile epilogue
    `codes` (RELU, ADD0, ADD1 only: in_tile_steps) runs on the sums first, residuals read at `at`."""
    lanes = simd.lanes(out)
    whole = cols >= 2 * lanes
    low = min(cols, lanes)
    high = max(cols - lanes, 0)
    if accumulate:
        if whole:
            v0 = simd.add(v0, simd.load(out, at))
            v1 = simd.add(v1, simd.load(out, at + lanes))
        else:
            v0 = simd.add(v0, simd.load_partial(out, at, low))
            if high > 0:  # (an access at at + lanes may lie past the array even when empty)
                v1 = simd.add(v1, simd.load_partial(out, at + lanes, high))
    if last:
        for s in range(codes.size):
            code = codes[s]
            if code == RELU:
                v0 = simd.max_nan(v0, simd.zeros(out))
                v1 = simd.max_nan(v1, simd.zeros(out))
            else:
                res = res0 if code == ADD0 else res1
                if whole:
                    v0 = simd.add(v0, simd.load(res, at))
                    v1 = simd.add(v1, simd.load(res, at + lanes))
                else:
                    v0 = simd.add(v0, simd.load_partial(res, at, low))
                    if high > 0:
                        v1 = simd.add(v1, simd.load_partial(res, at + lanes, high))
    if whole:
        simd.store(out, at, v0)
        simd.store(out, at + lanes, v1)
    else:
        simd.store_partial(out, at, v0, low)
        if high > 0:
            simd.store_partial(out, at + lanes, v1, high)


@jit.inline
def _bias_of(out, bias, row):  # type: ignore[no-untyped-def]
    return simd.splat(bias, row) if bias.size else simd.zeros(out)


@jit.inline
def _tile(wp, w_at, xp, x_at, depth, out, o_at, ld, rows, cols,  # type: ignore[no-untyped-def]
          accumulate, bias, row, last, res0, res1, codes):
    """out[rows x cols tile at o_at] (+)= wp micro-panel (depth x MR at w_at) times xp panel (depth x NR
    at x_at); the bias of rows row.. added when add_bias. Panels are whole: indices in range by the
    packing (tests/backends/test_numpy_gemm.py over shapes), so the hot loop reads unchecked."""
    lanes = simd.lanes(out)
    nr = 2 * lanes
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
    a70 = simd.zeros(out)
    a71 = simd.zeros(out)
    for k in range(depth):
        b0 = simd.load_unchecked(xp, x_at + k * nr)
        b1 = simd.load_unchecked(xp, x_at + k * nr + lanes)
        w = w_at + k * 8
        a = simd.splat_unchecked(wp, w)
        a00 = simd.fma(a, b0, a00)
        a01 = simd.fma(a, b1, a01)
        a = simd.splat_unchecked(wp, w + 1)
        a10 = simd.fma(a, b0, a10)
        a11 = simd.fma(a, b1, a11)
        a = simd.splat_unchecked(wp, w + 2)
        a20 = simd.fma(a, b0, a20)
        a21 = simd.fma(a, b1, a21)
        a = simd.splat_unchecked(wp, w + 3)
        a30 = simd.fma(a, b0, a30)
        a31 = simd.fma(a, b1, a31)
        a = simd.splat_unchecked(wp, w + 4)
        a40 = simd.fma(a, b0, a40)
        a41 = simd.fma(a, b1, a41)
        a = simd.splat_unchecked(wp, w + 5)
        a50 = simd.fma(a, b0, a50)
        a51 = simd.fma(a, b1, a51)
        a = simd.splat_unchecked(wp, w + 6)
        a60 = simd.fma(a, b0, a60)
        a61 = simd.fma(a, b1, a61)
        a = simd.splat_unchecked(wp, w + 7)
        a70 = simd.fma(a, b0, a70)
        a71 = simd.fma(a, b1, a71)
    if last and bias.size:
        b = _bias_of(out, bias, row)
        a00, a01 = simd.add(a00, b), simd.add(a01, b)
        if rows > 1:
            b = _bias_of(out, bias, row + 1)
            a10, a11 = simd.add(a10, b), simd.add(a11, b)
        if rows > 2:
            b = _bias_of(out, bias, row + 2)
            a20, a21 = simd.add(a20, b), simd.add(a21, b)
        if rows > 3:
            b = _bias_of(out, bias, row + 3)
            a30, a31 = simd.add(a30, b), simd.add(a31, b)
        if rows > 4:
            b = _bias_of(out, bias, row + 4)
            a40, a41 = simd.add(a40, b), simd.add(a41, b)
        if rows > 5:
            b = _bias_of(out, bias, row + 5)
            a50, a51 = simd.add(a50, b), simd.add(a51, b)
        if rows > 6:
            b = _bias_of(out, bias, row + 6)
            a60, a61 = simd.add(a60, b), simd.add(a61, b)
        if rows > 7:
            b = _bias_of(out, bias, row + 7)
            a70, a71 = simd.add(a70, b), simd.add(a71, b)
    _store_row(out, o_at, a00, a01, cols, accumulate, last, res0, res1, codes)
    if rows > 1:
        _store_row(out, o_at + ld, a10, a11, cols, accumulate, last, res0, res1, codes)
    if rows > 2:
        _store_row(out, o_at + 2 * ld, a20, a21, cols, accumulate, last, res0, res1, codes)
    if rows > 3:
        _store_row(out, o_at + 3 * ld, a30, a31, cols, accumulate, last, res0, res1, codes)
    if rows > 4:
        _store_row(out, o_at + 4 * ld, a40, a41, cols, accumulate, last, res0, res1, codes)
    if rows > 5:
        _store_row(out, o_at + 5 * ld, a50, a51, cols, accumulate, last, res0, res1, codes)
    if rows > 6:
        _store_row(out, o_at + 6 * ld, a60, a61, cols, accumulate, last, res0, res1, codes)
    if rows > 7:
        _store_row(out, o_at + 7 * ld, a70, a71, cols, accumulate, last, res0, res1, codes)


@jit.inline
def _pack_block(x, k0, depth, n0, width, xp):  # type: ignore[no-untyped-def]
    """xp[panel, k, c] = x[k0 + k, n0 + panel * NR + c] for k < depth, panel * NR + c < width, else 0.
    Row by row of x (reads in order, from memory; the writes land in the L2-sized block)."""
    lanes = simd.lanes(xp)
    nr = 2 * lanes
    n_total = x.shape[1]
    whole = width // nr
    cols = width - whole * nr
    low = min(cols, lanes)
    high = max(cols - lanes, 0)
    panel_size = depth * nr
    for k in range(depth):
        source = (k0 + k) * n_total + n0
        target = k * nr
        for panel in range(whole):
            simd.store(xp, target, simd.load(x, source))
            simd.store(xp, target + lanes, simd.load(x, source + lanes))
            source += nr
            target += panel_size
        if cols:
            simd.store(xp, target, simd.load_partial(x, source, low))
            upper = simd.load_partial(x, source + lanes, high) if high > 0 else simd.zeros(xp)
            simd.store(xp, target + lanes, upper)


@jit.kernel
def gemm_kernel(wp, m, x, out, bias, xp, block_columns, block_depth,  # type: ignore[no-untyped-def]
                block_rows, res0, res1, codes, params, single, in_tile):
    """out (m, n) = epilogue(W @ x + bias) with W packed in wp (pack_weight); xp: scratch of at least
    KC * block_columns elements; codes/params/res0/res1 as epilogue_jit.apply_steps takes them (no
    codes: no epilogue), applied in the tiles when `in_tile` (RELU, ADD0, ADD1 only), else on each
    block of rows once its sums are complete."""
    k_total, n_total = x.shape
    nr = 2 * simd.lanes(out)
    tile_codes = codes if in_tile else codes[:0]
    flat = out.reshape(-1)
    for n0 in range(0, n_total, block_columns):
        width = min(block_columns, n_total - n0)
        for k0 in range(0, k_total, block_depth):
            depth = min(block_depth, k_total - k0)
            _pack_block(x, k0, depth, n0, width, xp)
            last = k0 + depth == k_total
            for m0 in range(0, m, block_rows):
                m1 = min(m, m0 + block_rows)
                for c in range(0, width, nr):
                    cols = min(nr, width - c)
                    for row in range(m0, m1, MR):
                        rows = min(MR, m - row)
                        w_at = row * k_total + k0 * MR
                        o_at = row * n_total + n0 + c
                        if rows == MR and cols == nr:  # constants: a whole tile's stores without branches
                            _tile(wp, w_at, xp, c * depth, depth, out, o_at, n_total, MR, nr, k0 > 0,
                                  bias, row, last, res0, res1, tile_codes)
                        else:
                            _tile(wp, w_at, xp, c * depth, depth, out, o_at, n_total, rows, cols, k0 > 0,
                                  bias, row, last, res0, res1, tile_codes)
                if last and codes.size and not in_tile:
                    for r in range(m0, m1):
                        at = r * n_total + n0
                        end = at + width
                        apply_steps(flat[at:end], res0[at:end] if res0.size else res0,
                                    res1[at:end] if res1.size else res1, codes, params, single)


apply_steps = epilogue_jit.apply_steps


def block_columns(k: int, dtype: np.dtype) -> int:
    """NC: columns of X's packed block, a multiple of NR, so KC x NC fits BLOCK_BYTES."""
    nr = columns_per_tile(dtype)
    depth = min(KC, k)
    return max(nr, BLOCK_BYTES // (depth * np.dtype(dtype).itemsize) // nr * nr)


def in_tile_steps(steps: tuple) -> bool:
    """The epilogue runs inside the micro-kernel's store (on sums in registers): ReLU and adds only."""
    return all(step[0] in ("relu", "add") for step in steps)


def gemm(packed: np.ndarray, m: int, x: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None,
         steps: tuple = (), residuals: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """out (m, n) = steps(W @ x + bias), W packed by pack_weight, x (K, N) and out C-contiguous of one
    dtype (float32 or float64, numba enabled); residuals of out's shape (at most two: the caller runs
    longer chains itself). Returns out.

        out = gemm(pack_weight(w), len(w), x, np.empty((len(w), x.shape[1]), x.dtype))
    """
    dtype = out.dtype
    columns = block_columns(x.shape[0], dtype)
    xp = scratch("gemm packed columns", (min(KC, x.shape[0]) * columns,), dtype)
    rows = ROW_PANELS * MR
    fused, codes, params, res0, res1 = epilogue_jit.kernel_epilogue(tuple(steps), residuals, dtype)
    assert fused, "gemm takes at most two residuals"
    empty = np.empty(0, dtype)
    gemm_kernel(packed, m, x, out, empty if bias is None else np.ascontiguousarray(bias, dtype), xp,
                columns, KC, rows, res0, res1, codes, params, dtype == np.float32, in_tile_steps(steps))
    return out


__all__ = ["KC", "MR", "gemm", "gemm_kernel", "in_tile_steps", "pack_weight"]
