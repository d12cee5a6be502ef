"""How an output's NaN and +-inf compare with a reference's: the non-finite half of every numerics check.

torch keeps NaN (relu(NaN), max(NaN, x) and any sum with a NaN are NaN) and keeps inf where IEEE
arithmetic does. A backend matches torch *exactly* when NaN, +inf and -inf sit at the same positions.
Winograd cannot: its input transform mixes every pixel of a tile, so one non-finite input pixel makes
the whole output tile non-finite, and +-inf becomes NaN (inf - inf). Its contract, which `check_spread`
tests on a conv's output, is weaker but still never lets a NaN through:

- every value the reference has non-finite is non-finite (never a number where torch has NaN/inf);
- a value the reference has finite is non-finite only inside a tile x tile output tile that holds a
  reference non-finite value (Winograd tiles start at output row/column 0);
- where both are finite the values agree (within the usual budget, checked by the caller).

    nonfinite_mismatch(y, ref)           # None, or "NaN at (0, 3, 1, 1) where the reference has 2.5"
    check_spread(y, ref, tile=4)         # None, or what breaks the Winograd contract
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EXACT = "exact"
SPREADS = "spreads within tile"


def _kind(value: float) -> str:
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def _first(actual: np.ndarray, expected: np.ndarray, bad: np.ndarray) -> str:
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    return (f"{_kind(float(actual[where]))} at {where} where the reference has {_kind(float(expected[where]))} "
            f"({int(bad.sum())} such values)")


def nonfinite_mismatch(actual: np.ndarray, expected: np.ndarray) -> str | None:
    """None when `actual` holds NaN, +inf and -inf exactly where `expected` does; else the first place
    they differ."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape {actual.shape} differs from the reference's {expected.shape}")
    bad = (np.isnan(actual) != np.isnan(expected)) | (np.isposinf(actual) != np.isposinf(expected)) | \
        (np.isneginf(actual) != np.isneginf(expected))
    return _first(actual, expected, bad) if bad.any() else None


def finite_rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e| over the positions finite in both (0.0 when there are none)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    both = np.isfinite(actual) & np.isfinite(expected)
    if not both.any():
        return 0.0
    scale = max(float(np.max(np.abs(expected[both]))), 1e-30)
    return float(np.max(np.abs(actual[both] - expected[both]))) / scale


def nan_never_passes(actual: np.ndarray, expected: np.ndarray) -> str | None:
    """The part of the contract every algorithm keeps: where the reference is non-finite, so is `actual`
    (a NaN may stand for an inf, never a number for either)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    bad = ~np.isfinite(expected) & np.isfinite(actual)
    return _first(actual, expected, bad) if bad.any() else None


def check_spread(actual: np.ndarray, expected: np.ndarray, tile: int, poisoned: np.ndarray | None = None
                 ) -> str | None:
    """Winograd's contract on one conv's (N, C, ..., H, W) output (see the module docstring): None when
    it holds, else what breaks it. `poisoned` marks the conv outputs the reference has non-finite before
    a fused activation (relu(-inf) is 0, yet its tile read an inf); default: `expected`'s own."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    poisoned = ~np.isfinite(expected) if poisoned is None else np.asarray(poisoned, bool)
    lost = nan_never_passes(actual, expected)
    if lost:
        return f"a non-finite value became a number: {lost}"
    *lead, h, w = expected.shape
    th, tw = -(-h // tile), -(-w // tile)
    padded = np.zeros((*lead, th * tile, tw * tile), bool)
    padded[..., :h, :w] = poisoned
    tiles = padded.reshape(*lead, th, tile, tw, tile).any(axis=(-3, -1))  # a reference non-finite in it
    in_tile = np.repeat(np.repeat(tiles, tile, axis=-2), tile, axis=-1)[..., :h, :w]
    stray = ~np.isfinite(actual) & np.isfinite(expected) & ~in_tile
    return f"non-finite outside any poisoned {tile}x{tile} tile: {_first(actual, expected, stray)}" \
        if stray.any() else None


def classify(actual: np.ndarray, expected: np.ndarray) -> str:
    """EXACT, SPREADS (non-finite values spread but none became a number) or 'wrong: <where>'."""
    if nonfinite_mismatch(actual, expected) is None:
        return EXACT
    lost = nan_never_passes(actual, expected)
    return f"wrong: {lost}" if lost else SPREADS


def poisoned(inputs: Sequence[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Copies of `inputs` with a NaN, a +inf and a -inf each at a seeded position (a check's probe)."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for x in inputs:
        x = np.array(x, np.float64, copy=True)
        for value in (np.nan, np.inf, -np.inf):
            x[tuple(int(rng.integers(0, n)) for n in x.shape)] = value
        out.append(x)
    return out


def verdict(outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], algos: Sequence[str]
            ) -> tuple[str, bool]:
    """What `convc check` reports for a run on `poisoned` inputs: (text, within the contract). Spreading
    is within the contract only when a Winograd algorithm ran (`algos`: the plan's, one per layer)."""
    kinds = [classify(o, r) for o, r in zip(outputs, references)]
    wrong = next((k for k in kinds if k.startswith("wrong")), None)
    if wrong:
        return wrong, False
    if all(k == EXACT for k in kinds):
        return EXACT, True
    winograd = sorted({a for a in algos if a.startswith("winograd")})
    if not winograd:
        return f"{SPREADS}, without Winograd", False
    return f"{SPREADS} ({', '.join(winograd)})", True
