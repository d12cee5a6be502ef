"""backends/numpy_ref/jit.py: the switch, and that compiled loops keep IEEE semantics (NaN, inf, -0)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from convc.backends.numpy_ref import jit


def test_switch_reads_the_environment_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jit.SWITCH, "0")
    assert not jit.enabled()
    monkeypatch.setenv(jit.SWITCH, "1")
    assert jit.enabled() == jit.installed()
    assert (jit.version() is None) == (not jit.installed())


@jit.kernel
def _axpy_relu(x: np.ndarray, y: np.ndarray, a: float, out: np.ndarray) -> None:
    for i in range(x.size):
        v = a * x[i] + y[i]
        out[i] = v if not v < 0 else 0.0  # max(v, 0) that keeps NaN, as torch.relu does


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_loop_keeps_nan_inf_and_matches_numpy(dtype: type) -> None:
    x = np.array([1.5, np.nan, np.inf, -np.inf, 0.0, -2.0, 3.0, 1e30], dtype)
    y = np.array([0.25, 1.0, -np.inf, 1.0, -0.0, 1.0, np.nan, 1e30], dtype)
    out = np.empty_like(x)
    _axpy_relu(x, y, dtype(2.0), out)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = np.maximum(dtype(2.0) * x + y, 0)  # np.maximum propagates NaN
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(out[~np.isnan(out)], expected[~np.isnan(expected)], rtol=1e-6)
    assert np.isnan(out[[1, 2, 6]]).all()  # NaN in, inf - inf, NaN residual


@jit.kernel
def _reciprocal_(x: np.ndarray) -> None:
    for i in range(x.size):
        x[i] = 1.0 / x[i]


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
def test_division_by_zero_gives_inf_not_an_exception() -> None:
    x = np.array([0.0, -0.0, 2.0])
    _reciprocal_(x)
    np.testing.assert_array_equal(x, [np.inf, -np.inf, 0.5])


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
@pytest.mark.parametrize("damage", ["truncate index", "garbage index", "garbage data"])
def test_a_corrupt_cache_file_is_rebuilt_not_raised(damage: str) -> None:
    x = np.array([1.0, -3.0])
    _reciprocal_(x.copy())  # compiled and saved
    folder = Path(_reciprocal_._cache._cache_path)
    index = next(folder.glob("*_reciprocal_*.nbi"))
    data = next(folder.glob("*_reciprocal_*.nbc"))
    if damage == "truncate index":
        index.write_bytes(b"")
    else:
        (index if damage == "garbage index" else data).write_bytes(os.urandom(64))
    fresh = jit.kernel(_reciprocal_.py_func)  # a new process's view: nothing compiled in memory
    fresh(x)
    np.testing.assert_array_equal(x, [1.0, -1 / 3])
    again = jit.kernel(_reciprocal_.py_func)
    y = np.array([4.0])
    again(y)  # loads what `fresh` wrote
    assert y[0] == 0.25
    assert sum(again._cache_hits.values()) == 1  # the rebuilt files load


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
def test_a_change_anywhere_in_the_package_misses_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """An inlined helper lives in another file than the kernel (exp_jit.py in epilogue_jit.py's kernels);
    numba alone would replay the old machine code after the helper changed."""
    x = np.array([2.0])
    _reciprocal_(x)  # compiled or loaded, and saved, under today's sources
    loaded = jit.kernel(_reciprocal_.py_func)
    loaded(np.array([2.0]))
    assert sum(loaded._cache_hits.values()) == 1
    monkeypatch.setattr(jit, "sources_digest", lambda: "a helper changed")
    edited = jit.kernel(_reciprocal_.py_func)
    edited(np.array([2.0]))
    assert sum(edited._cache_hits.values()) == 0 and sum(edited._cache_misses.values()) == 1
