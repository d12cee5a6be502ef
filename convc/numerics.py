"""Numerical budgets and the error measure every check uses.

Error is max |actual - reference| / max |reference| against a float64 reference. NaN or inf in the
result never passes. Budgets are per dtype and per conv algorithm; Winograd F(4x4,3x3) is looser
than F(2x2,3x3) because its transforms grow values (Lavin & Gray; REFERENCE.md).
"""
from __future__ import annotations

import numpy as np

# Per single op or layer.
OP_BUDGETS: dict[str, float] = {
    "float64": 1e-10,
    "float32": 1e-5,
    "tf32": 5e-4,
    "float16": 1e-2,
    "bfloat16": 2e-2,
}
# Extra factor for conv algorithms that lose accuracy by construction.
ALGO_FACTOR: dict[str, float] = {"winograd_2x2": 2.0, "winograd_4x4": 10.0}
# Whole networks accumulate error through depth (BN, softmax, deep residual stacks); half precision
# gets less headroom than a flat x10 would give, since its per-op budget is already loose.
MODEL_BUDGETS: dict[str, float] = {
    "float64": 1e-9,
    "float32": 1e-4,
    "tf32": 2e-3,
    "float16": 2e-2,
    "bfloat16": 5e-2,
}


def budget(dtype: str, algo: str | None = None, *, whole_model: bool = False) -> float:
    """The relative-error budget of one op (or a whole model) computed in `dtype` with `algo`."""
    base = MODEL_BUDGETS[dtype] if whole_model else OP_BUDGETS[dtype]
    return base * ALGO_FACTOR.get(algo or "", 1.0)


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e|; non-finite values in `actual` give inf, so they never pass."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape {actual.shape} differs from the reference's {expected.shape}")
    if actual.size == 0:
        return 0.0
    if not np.all(np.isfinite(actual)):
        return float("inf")
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    return float(np.max(np.abs(actual - expected))) / scale
