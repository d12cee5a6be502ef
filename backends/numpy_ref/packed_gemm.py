"""Which compiled GEMM runs an ungrouped convolution's out = W @ X, and its weight packed once.

    route = packed_gemm.route(x.dtype, m, n)          # "wide", "narrow" or None (BLAS: np.matmul)
    packed_gemm.gemm(route, w, x, out, bias, steps, residuals)

gemm_jit.py tiles out 8 rows x 32 columns ("wide"); gemm_narrow_jit.py 32 rows x 7 columns ("narrow",
for a few dozen columns). Each packs the weight into its micro-kernel's panels; packed_weight keeps that
for as long as the weight array lives, unchanged (packed_cache.py; the interpreter casts a model's
parameters once, so every forward hands a layer the same array), so a model's weights are packed on
its first forward only, where BLAS packs them on every call.
"""
from __future__ import annotations

import numpy as np
from convc.backends.numpy_ref import epilogue_jit, gemm_jit, gemm_narrow_jit, jit, packed_cache

# The narrow kernel runs outputs of NARROW_MIN_COLUMNS to NARROW_MAX_COLUMNS positions whose 7-wide
# tiles are at least 7/8 full: 49 (7x7 maps) at 0.75-0.8 of OpenBLAS's time, 196 (14x14) at 1.2x, and
# squeeze-excitation's 1x1 maps (one column in a 7-wide tile) at 1.05-1.3x (bench/NOTES.md, gemm).
NARROW_MIN_COLUMNS = 28
NARROW_MAX_COLUMNS = 64

KERNELS = {"wide": gemm_jit, "narrow": gemm_narrow_jit}

# The wide kernel measured at OpenBLAS's speed on ResNet-50's 28x28 and 56x56 1x1 convs (0.92-1.05 per
# layer) and a little slower on small ones (RegNet-Y 400MF's 104-channel layers 1.02-1.13, the model
# 1.02-1.04x): not routed until it wins (bench/NOTES.md, gemm). route() picks it when this is True.
WIDE_ROUTED = False


def route(dtype: np.dtype, m: int, n: int) -> str | None:
    """The compiled GEMM for an (m, n) float32 output, or None where BLAS is as fast: "narrow" for
    NARROW_MIN_COLUMNS <= n <= NARROW_MAX_COLUMNS with 7-wide tiles at least 7/8 full (n = 49, 56...),
    "wide" (if WIDE_ROUTED) for larger n that fills 32-column tiles (at most 1/16 of the last tile's
    columns wasted: n = 784, 3136, 12544...), else None. Always None for other dtypes or numba off."""
    if np.dtype(dtype) != np.float32 or not jit.enabled() or m < 1:
        return None
    if n <= NARROW_MAX_COLUMNS:
        columns = gemm_narrow_jit.COLUMNS
        full = NARROW_MIN_COLUMNS <= n and -n % columns * 8 <= -(-n // columns) * columns
        return "narrow" if full else None
    nr = gemm_jit.columns_per_tile(np.dtype(dtype))
    return "wide" if WIDE_ROUTED and -n % nr * 16 <= -(-n // nr) * nr else None


def packed_weight(w: np.ndarray, kernel: str) -> np.ndarray:
    """KERNELS[kernel].pack_weight(w as (len(w), -1)), made on the first call for this array and kept
    while it lives and is unchanged (packed_cache.py). An array made per call (a weight scaled by
    squeeze-excitation) is packed per call and its entry dropped with it."""
    return packed_cache.packed(w, ("gemm", kernel),
                               lambda w: KERNELS[kernel].pack_weight(w.reshape(w.shape[0], -1)))


def fuses(out: np.ndarray, residuals: tuple[np.ndarray, ...]) -> bool:
    """The kernels can apply the epilogue themselves: at most two residuals, each C-contiguous of out's
    dtype and shape."""
    return len(residuals) <= epilogue_jit.KERNEL_RESIDUALS and epilogue_jit.applicable(out, *residuals)


def gemm(kernel: str, w: np.ndarray, x: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None,
         steps: tuple = (), residuals: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """out (m, n) = steps(w (m, k) @ x (k, n) + bias) by KERNELS[kernel], w packed once (above); x and
    out C-contiguous, at most two residuals of out's shape. Returns out.

        out = gemm("wide", w, x, np.empty((len(w), x.shape[1]), np.float32))
    """
    return KERNELS[kernel].gemm(packed_weight(w, kernel), len(w), x, out, bias, steps, residuals)


__all__ = ["NARROW_MAX_COLUMNS", "NARROW_MIN_COLUMNS", "WIDE_ROUTED", "fuses", "gemm", "packed_weight",
           "route"]
