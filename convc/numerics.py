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
# Whole networks accumulate error through depth (BN, softmax, deep residual stacks).
MODEL_FACTOR = 10.0


def budget(dtype: str, algo: str | None = None, *, whole_model: bool = False) -> float:
    b = OP_BUDGETS[dtype] * ALGO_FACTOR.get(algo or "", 1.0)
    return b * MODEL_FACTOR if whole_model else b


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
