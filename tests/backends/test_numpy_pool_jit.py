"""The NumPy backend's 2D max pooling with stride 2 across, compiled (pooling_jit.py) and in NumPy
(CONVC_NUMBA=0), against torch float64: windows of 2, 3 (their own loops) and others, padding,
ceil mode, odd sizes, NaN and inf exactly where torch has them, and the compiled kernel really running."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_numpy_winograd_jit import numba_switch

import convc
from convc.backends.numpy_ref import backend, jit, pooling_jit
from convc.nonfinite import nonfinite_mismatch

SWITCH = {"compiled": "1", "numpy": "0"}


def pool_and_reference(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int], ceil_mode: bool, dtype: str
                       ) -> tuple[np.ndarray, np.ndarray]:
    net = convc.Network("pool_jit")
    net.output(net.max_pool2d(net.input(x.shape), kernel, stride=stride, padding=padding,
                              ceil_mode=ceil_mode))
    out = backend.compile(net.graph, dtype=dtype).run(x)[0]
    ref = F.max_pool2d(torch.from_numpy(x.astype(np.float64)), kernel, stride, padding, ceil_mode=ceil_mode)
    return out, ref.numpy()


def poisoned(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[0], flat[flat.size // 3], flat[-1] = np.nan, np.inf, -np.inf
    flat[flat.size // 2] = np.nan
    return x


# (input shape, kernel, stride, padding, ceil_mode)
CASES = [
    ((1, 3, 12, 12), (3, 3), (2, 2), (1, 1), False),  # ResNet's stem pool
    ((2, 4, 13, 11), (3, 3), (2, 2), (0, 0), True),  # GoogLeNet's, odd sizes
    ((1, 2, 8, 9), (2, 2), (2, 2), (0, 0), False),  # VGG's
    ((1, 2, 7, 9), (2, 2), (2, 2), (1, 1), True),
    ((1, 3, 9, 10), (4, 5), (1, 2), (2, 2), True),  # generic column loop, stride 1 down
    ((2, 1, 5, 3), (3, 3), (2, 2), (1, 1), True),  # narrower than a few windows
]


@pytest.mark.parametrize("switch", SWITCH)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) for c in CASES])
def test_both_paths_match_torch_with_nan_and_inf(case: tuple, dtype: str, switch: str) -> None:
    shape, kernel, stride, padding, ceil_mode = case
    with numba_switch(SWITCH[switch]):
        out, ref = pool_and_reference(poisoned(shape), kernel, stride, padding, ceil_mode, dtype)
    assert not np.isfinite(ref).all()
    assert nonfinite_mismatch(out, ref) is None, nonfinite_mismatch(out, ref)
    both = np.isfinite(ref)
    assert np.array_equal(out[both], ref[both].astype(dtype))  # a maximum is exact


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 14), w=st.integers(1, 14), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       sh=st.integers(1, 3), pads=st.tuples(st.integers(0, 2), st.integers(0, 2)), ceil_mode=st.booleans(),
       seed=st.integers(0, 3))
def test_compiled_pool_property_matches_torch(h: int, w: int, k: tuple[int, int], sh: int,
                                              pads: tuple[int, int], ceil_mode: bool, seed: int) -> None:
    assume(all(2 * p <= kk for p, kk in zip(pads, k)))  # torch: padding at most half the window
    assume(h + 2 * pads[0] >= k[0] and w + 2 * pads[1] >= k[1])
    x = poisoned((1, 2, h, w), seed)
    with numba_switch("1"):
        out, ref = pool_and_reference(x, k, (sh, 2), pads, ceil_mode, "float32")
    assert nonfinite_mismatch(out, ref) is None, nonfinite_mismatch(out, ref)
    both = np.isfinite(ref)
    assert np.array_equal(out[both], ref[both].astype(np.float32))


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
def test_the_compiled_kernel_runs_for_stride_2_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    kernel = pooling_jit.max_pool2d_
    monkeypatch.setattr(pooling_jit, "max_pool2d_", lambda *a: (calls.append(a[3:5]), kernel(*a))[1])
    monkeypatch.setenv(jit.SWITCH, "1")
    x = poisoned((1, 2, 8, 8))
    pool_and_reference(x, (3, 3), (2, 2), (1, 1), False, "float32")
    pool_and_reference(x, (3, 3), (1, 1), (1, 1), False, "float32")  # stride 1: NumPy's whole-row taps
    assert calls == [(2, 2)]
    monkeypatch.setenv(jit.SWITCH, "0")
    pool_and_reference(x, (3, 3), (2, 2), (1, 1), False, "float32")
    assert calls == [(2, 2)]
