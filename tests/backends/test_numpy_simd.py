"""backends/numpy_ref/simd.py: explicit vectors in compiled kernels, checked lane by lane against NumPy
(float64 references), their bounds checks, NaN, and a register-blocked micro-kernel against a float64
matrix product. The NumPy stand-ins (numba missing) run the same kernels as Python and must agree."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.backends.numpy_ref import jit, simd

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba not installed")

DTYPES = [np.float32, np.float64]


@jit.kernel
def _ops(a, b, c, out):  # out rows: load, fma, add, sub, mul, max_nan, splat, splat_value, zeros
    n = simd.lanes(a)
    x = simd.load(a, 0)
    y = simd.load(b, 0)
    z = simd.load(c, 0)
    simd.store(out, 0 * n, x)
    simd.store(out, 1 * n, simd.fma(x, y, z))
    simd.store(out, 2 * n, simd.add(x, y))
    simd.store(out, 3 * n, simd.sub(x, y))
    simd.store(out, 4 * n, simd.mul(x, y))
    simd.store(out, 5 * n, simd.max_nan(x, y))
    simd.store(out, 6 * n, simd.splat(a, 3))
    simd.store(out, 7 * n, simd.splat_value(a, 2.5))
    simd.store(out, 8 * n, simd.zeros(a))
    return simd.hsum(x)


@jit.kernel
def _partial(a, index, count, out, out_index):
    simd.store_partial(out, out_index, simd.load_partial(a, index, count), count)


@jit.kernel
def _load_at(a, index):
    return simd.hsum(simd.load(a, index))


@jit.kernel
def _store_at(a, index):
    simd.store(a, index, simd.zeros(a))


@jit.kernel
def _splat_at(a, index):
    return simd.hsum(simd.splat(a, index))


@jit.kernel
def _two_by_two_vectors(a, b, c, k_len):
    """c (2 x 2L) = a (k x 2, packed by k) @ b (k x 2L, packed by k): four accumulators in registers."""
    n = simd.lanes(c)
    acc00 = simd.zeros(c)
    acc01 = simd.zeros(c)
    acc10 = simd.zeros(c)
    acc11 = simd.zeros(c)
    for k in range(k_len):
        b0 = simd.load_unchecked(b, k * 2 * n)
        b1 = simd.load_unchecked(b, k * 2 * n + n)
        a0 = simd.splat_unchecked(a, 2 * k)
        a1 = simd.splat_unchecked(a, 2 * k + 1)
        acc00 = simd.fma(a0, b0, acc00)
        acc01 = simd.fma(a0, b1, acc01)
        acc10 = simd.fma(a1, b0, acc10)
        acc11 = simd.fma(a1, b1, acc11)
    simd.store(c, 0, acc00)
    simd.store(c, n, acc01)
    simd.store(c, 2 * n, acc10)
    simd.store(c, 3 * n, acc11)


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_operation_lane_by_lane(dtype):
    n = simd.lanes_of(dtype)
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    a[1], b[2], a[4], b[4] = np.nan, np.nan, np.inf, -np.inf
    out = np.full(9 * n, 7.0, dtype)
    total = _ops(a, b, c, out)
    rows = out.reshape(9, n)
    wide = [v.astype(np.float64) for v in (a, b, c)]
    np.testing.assert_array_equal(rows[0], a)
    fused = (wide[0] * wide[1] + wide[2]).astype(dtype)  # float32: the exact product, rounded once
    np.testing.assert_allclose(rows[1], fused, rtol=0 if dtype == np.float32 else 1e-15, atol=0)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(rows[2], a + b)
    np.testing.assert_array_equal(rows[3], a - b)
    np.testing.assert_array_equal(rows[4], a * b)
    np.testing.assert_array_equal(rows[5], np.maximum(a, b))  # NaN from either side, as torch.maximum
    assert np.isnan(rows[5][1]) and np.isnan(rows[5][2])
    np.testing.assert_array_equal(rows[6], np.full(n, a[3]))
    np.testing.assert_array_equal(rows[7], np.full(n, 2.5, dtype))
    np.testing.assert_array_equal(rows[8], np.zeros(n, dtype))
    assert np.isnan(total)
    a[1], a[4] = 0.5, 2.0
    in_order = a[0]
    for value in a[1:]:
        in_order = in_order + value  # the lanes added left to right, in the array's dtype
    assert _ops(a, b, c, out) == in_order
    a[4] = np.inf
    assert _ops(a, b, c, out) == np.inf


def test_vectors_are_one_register_wide():
    assert simd.lanes_of(np.float32) == 16 and simd.lanes_of(np.float64) == 8
    assert _ops(*(np.ones(16, np.float32) for _ in range(3)), np.zeros(9 * 16, np.float32)) == 16.0
    assert _ops(*(np.ones(8) for _ in range(3)), np.zeros(9 * 8)) == 8.0


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_partial_loads_and_stores_touch_only_their_lanes(dtype, data):
    n = simd.lanes_of(dtype)
    size = data.draw(st.integers(1, 3 * n))
    count = data.draw(st.integers(0, min(n, size)))
    index = data.draw(st.integers(0, size - count))
    out_index = data.draw(st.integers(0, size - count))
    a = np.arange(1, size + 1, dtype=dtype)
    out = np.full(size, -1.0, dtype)
    _partial(a, index, count, out, out_index)
    expected = np.full(size, -1.0, dtype)
    expected[out_index:out_index + count] = a[index:index + count]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accesses_past_the_array_raise_index_error(dtype):
    n = simd.lanes_of(dtype)
    a = np.ones(2 * n, dtype)
    assert _load_at(a, n) == n
    for bad in (n + 1, -1, 2 * n):
        with pytest.raises(IndexError, match="past the array's end"):
            _load_at(a, bad)
        with pytest.raises(IndexError, match="past the array's end"):
            _store_at(a, bad)
    with pytest.raises(IndexError, match="past the array's end"):
        _splat_at(a, 2 * n)
    with pytest.raises(IndexError, match="lane count"):
        _partial(a, 0, n + 1, np.zeros(2 * n, dtype), 0)
    with pytest.raises(IndexError, match="past the array's end"):
        _partial(a, 2 * n - 1, 2, np.zeros(2 * n, dtype), 0)


def test_non_contiguous_arrays_are_refused_at_compile_time():
    with pytest.raises(Exception, match="C-contiguous"):
        _load_at(np.ones((4, 32), np.float32)[:, ::2], 0)
    with pytest.raises(Exception, match="float32 or float64"):
        _load_at(np.ones(32, np.int32), 0)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None)
@given(k_len=st.integers(0, 300), seed=st.integers(0, 2**16))
def test_register_blocked_micro_kernel_matches_float64(dtype, k_len, seed):
    n = simd.lanes_of(dtype)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k_len, 2)).astype(dtype)
    b = rng.standard_normal((k_len, 2 * n)).astype(dtype)
    c = np.full((2, 2 * n), np.nan, dtype)
    _two_by_two_vectors(a, b, c, k_len)
    reference = a.astype(np.float64).T @ b.astype(np.float64)
    budget = (1e-5 if dtype == np.float32 else 1e-13) * (1 + np.sqrt(k_len))
    np.testing.assert_allclose(c, reference, rtol=budget, atol=budget)


def test_micro_kernel_compiles_to_vector_fma():
    _two_by_two_vectors(np.ones((3, 2), np.float32), np.ones((3, 32), np.float32),
                        np.zeros((2, 32), np.float32), 3)
    llvm = "".join(_two_by_two_vectors.inspect_llvm().values())
    assert "llvm.fma.v16f32" in llvm


def _fallback_simd():
    """simd.py loaded afresh as if numba were not installed."""
    path = Path(simd.__file__)
    hidden = {name: sys.modules.get(name) for name in ("numba", "llvmlite")}
    sys.modules["numba"] = None  # type: ignore[assignment]
    sys.modules["llvmlite"] = None  # type: ignore[assignment]
    try:
        spec = importlib.util.spec_from_file_location("simd_without_numba", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, was in hidden.items():
            if was is None:
                del sys.modules[name]
            else:
                sys.modules[name] = was
    return module


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_stand_ins_run_the_same_kernel(dtype, monkeypatch):
    fallback = _fallback_simd()
    assert fallback.intrinsic is None
    n = fallback.lanes_of(dtype)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 2)).astype(dtype)
    b = rng.standard_normal((5, 2 * n)).astype(dtype)
    compiled = np.zeros((2, 2 * n), dtype)
    _two_by_two_vectors(a, b, compiled, 5)
    monkeypatch.setitem(_two_by_two_vectors.py_func.__globals__, "simd", fallback)
    python = np.zeros((2, 2 * n), dtype)
    _two_by_two_vectors.py_func(a, b, python, 5)
    np.testing.assert_allclose(python, compiled, rtol=1e-6 if dtype == np.float32 else 1e-14)
    with pytest.raises(IndexError, match="past the array's end"):
        fallback.load(np.ones(n, dtype), 1)
