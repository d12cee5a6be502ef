"""Numerical budgets and the error measure every check uses.

Error is max |actual - reference| / max |reference| against a float64 reference. NaN or inf in the
result never passes. Budgets are per dtype and per conv algorithm; Winograd F(4x4,3x3) is looser
than F(2x2,3x3) because its transforms grow values (Lavin & Gray; REFERENCE.md).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from convc.ir import Graph

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


def pass_param_dtype(compile_dtype: str, stored: np.dtype | str) -> np.dtype:
    """The dtype a pass stores a parameter it computes in (a folded batch norm, a folded constant):
    float64 when compiling in float64, so -O1/-O2 agree with -O0 to the float64 budget even for float32
    weights; otherwise the parameter's own dtype (the backend rounds it to the compute dtype anyway).

    >>> pass_param_dtype("float64", np.float32), pass_param_dtype("float16", np.float32)
    (dtype('float64'), dtype('float32'))
    """
    return np.dtype(np.float64) if compile_dtype == "float64" else np.dtype(stored)


def add_pass_param(graph: Graph, name: str, value: np.ndarray, logical_dtype: np.dtype | str,
                   compile_dtype: str) -> str:
    """Adds a parameter a pass computed: its node keeps the graph's `logical_dtype` (so operand dtypes
    still match), its array the precision of `pass_param_dtype`; backends cast arrays to the compute
    dtype. Returns the parameter's name."""
    node = graph.add_param(name, np.asarray(value).astype(logical_dtype))
    graph.params[node.name] = np.asarray(value).astype(pass_param_dtype(compile_dtype, logical_dtype))
    return node.name


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
