"""The register-blocked depthwise kernel (backends/numpy_ref/conv_depthwise_simd.py) against torch in
float64: every tile shape (8, 4 and 1 vectors) and both ways of blocking (several small planes per
block, several blocks of rows per large plane), strides and dilations (the phase split), padding
beyond the kernel, 1D, both dtypes, the epilogues with NaN and inf reaching them, residual adds, the
switch to it, and its refusal of scratch arrays too small for its unchecked vector accesses. The same
shapes run through the NumPy kernels (CONVC_NUMBA=0) to the same numbers."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from convc.backends.numpy_ref import backend, conv_depthwise, conv_depthwise_simd, jit, simd
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numpy_conv import TORCH_ACTIVATIONS, conv_graph, torch_conv
from test_numpy_depthwise_jit import EPILOGUES, MORE_ACTIVATIONS, run_both, summed_error

from convc.numerics import budget, rel_err

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba is not installed")


@pytest.fixture(autouse=True)
def register_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """This kernel on, compiled kernels on, and the oracle knows the activations fused here."""
    for name, fn in MORE_ACTIVATIONS.items():
        monkeypatch.setitem(TORCH_ACTIVATIONS, name, fn)
    monkeypatch.setenv(jit.SWITCH, "1")
    monkeypatch.setattr(conv_depthwise, "REGISTER_BLOCKED", True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epilogue", list(EPILOGUES), ids=list(EPILOGUES))
def test_fused_epilogues_match_torch_with_nan_and_inf(epilogue: str, dtype: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """NaN and +-inf in the input reach every activation and residual add: the same NaNs and infinities
    as torch, the finite values within the dtype's budget, the NumPy kernels agreeing."""
    graph = conv_graph(2, (2, 5, 9, 23), 5, 3, 1, 1, 1, 5, True, algo="depthwise",
                       epilogue=EPILOGUES[epilogue])
    rng = np.random.default_rng(3)
    inputs = [(3 * rng.standard_normal(n.type.shape)).astype(np.float32) for n in graph.inputs]
    x = inputs[0]
    x[0, 1, 3, 3], x[1, 2, 0, 0], x[1, 3, 8, 22], x[0, 4, 4, 16] = np.nan, np.inf, -np.inf, np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        compiled, fallback = run_both(graph, inputs, dtype, monkeypatch)
    expected = torch_conv(graph, inputs)
    assert np.isnan(expected).any()
    for got in (compiled, fallback):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        infinite = np.isinf(expected)
        np.testing.assert_array_equal(got[infinite], expected[infinite])
        finite = np.isfinite(expected)
        assert rel_err(got[finite], expected[finite]) <= budget(dtype, "depthwise")


def test_infinite_weight_meets_the_padding_as_nan() -> None:
    """torch pads with real zeros: an infinite weight on a padded tap makes NaN at the border only."""
    graph = conv_graph(2, (1, 3, 6, 20), 3, 3, 1, 1, 1, 3, False, algo="depthwise")
    graph.params["conv.weight"][1, 0, 0, 0] = np.inf
    inputs = [np.ones((1, 3, 6, 20), np.float32)]
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}), np.errstate(invalid="ignore"):
        got = backend.compile(graph, dtype="float32").run(*inputs)[0]
    expected = torch_conv(graph, inputs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[0, 1, 0]).all() and np.isinf(got[0, 1, 1:, 1:]).all()


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 20), height=st.integers(1, 12), width=st.integers(1, 40),
       kernel=st.sampled_from([1, 2, 3, 5, 7]), stride=st.integers(1, 3), dilation=st.integers(1, 2),
       lo=st.integers(0, 4), hi=st.integers(0, 4), block=st.sampled_from([1, 40, 300, 4096]),
       epilogue=st.sampled_from(list(EPILOGUES)), dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 50))
def test_any_shape_matches_torch_and_the_numpy_kernels(channels: int, height: int, width: int, kernel: int,
                                                       stride: int, dilation: int, lo: int, hi: int,
                                                       block: int, epilogue: str, dtype: str,
                                                       seed: int) -> None:
    """Any 2D shape (rows of 1 to 40: runs ending in each tile shape), kernel, stride, dilation and
    asymmetric padding, blocks of rows from one row to several planes, any epilogue (residuals too):
    within the budget of torch float64 and of the NumPy path."""
    span = dilation * (kernel - 1) + 1
    if span > height + lo + hi or span > width + hi + lo:
        return  # the kernel does not fit: the schema rejects the layer
    graph = conv_graph(2, (2, channels, height, width), channels, kernel, stride, ((lo, hi), (hi, lo)),
                       dilation, channels, seed % 2 == 0, algo="depthwise", epilogue=EPILOGUES[epilogue])
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    with mock.patch.object(conv_depthwise_simd, "BLOCK_ELEMENTS", block), \
            mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        model = backend.compile(graph, dtype=dtype)
        compiled = model.run(*inputs)[0]
        with mock.patch.dict("os.environ", {jit.SWITCH: "0"}):
            fallback = model.run(*inputs)[0]
    expected = torch_conv(graph, inputs)
    assert summed_error(compiled, expected, graph, inputs) <= budget(dtype, "depthwise")
    assert summed_error(compiled, fallback, graph, inputs) <= 2 * budget(dtype, "depthwise")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("channels, size, kernel, stride", [
    (7, 56, 3, 1), (6, 56, 5, 2), (9, 28, 7, 1), (17, 14, 5, 1), (33, 7, 3, 1), (5, 15, 3, 2)],
    ids=["56-3x3", "56-5x5-s2", "convnext-28", "14-5x5", "7x7-3x3", "odd-s2"])
def test_model_shapes_match_torch(channels: int, size: int, kernel: int, stride: int, dtype: str) -> None:
    """The map sizes of MobileNet, EfficientNet and ConvNeXt (fewer channels), with SiLU: large maps in
    several blocks of rows, small ones several planes to a block."""
    graph = conv_graph(2, (1, channels, size, size), channels, kernel, stride, kernel // 2, 1, channels,
                       True, algo="depthwise", epilogue=(("silu",),))
    inputs = [np.random.default_rng(size).standard_normal((1, channels, size, size)).astype(np.float32)]
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        got = backend.compile(graph, dtype=dtype).run(*inputs)[0]
    assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous
    assert rel_err(got, torch_conv(graph, inputs)) <= budget(dtype, "depthwise")


def test_1d_matches_torch() -> None:
    graph = conv_graph(1, (2, 6, 37), 6, 5, 2, ((2, 1),), 1, 6, True, algo="depthwise",
                       epilogue=(("relu",),))
    inputs = [np.random.default_rng(1).standard_normal((2, 6, 37)).astype(np.float32)]
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        got = backend.compile(graph, dtype="float32").run(*inputs)[0]
    assert rel_err(got, torch_conv(graph, inputs)) <= budget("float32", "depthwise")


def test_the_switch_picks_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """One filter per channel in 1D/2D runs here; multipliers and 3D do not; nor anything at
    CONVC_NUMBA=0."""
    calls: list[int] = []
    real = conv_depthwise_simd.conv_depthwise_simd
    monkeypatch.setattr(conv_depthwise, "conv_depthwise_simd", lambda conv: calls.append(1) or real(conv))
    models = [backend.compile(conv_graph(2, (1, 4, 6, 6), 4 * mult, 3, 1, 1, 1, 4, True, algo="depthwise"),
                              dtype="float32") for mult in (1, 2)]
    three_d = backend.compile(conv_graph(3, (1, 3, 4, 4, 4), 3, 3, 1, 1, 1, 3, True, algo="depthwise"),
                              dtype="float32")
    x2, x3 = np.ones((1, 4, 6, 6), np.float32), np.ones((1, 3, 4, 4, 4), np.float32)
    for model in models:
        model.run(x2)
    three_d.run(x3)
    assert calls == [1]
    monkeypatch.setenv(jit.SWITCH, "0")
    models[0].run(x2)
    assert calls == [1]


def test_scratch_too_small_is_refused() -> None:
    """The tiles load and store without bounds checks; the kernel checks its scratch first."""
    x = np.ones((1, 2, 14, 14), np.float32)
    w, bias = np.ones((2, 9), np.float32), np.zeros(2, np.float32)
    out = np.empty(2 * 14 * 14 + simd.lanes_of(np.float32), np.float32)
    offsets = np.array([i * 16 + j for i in range(3) for j in range(3)], np.int64)
    codes, params = np.empty(0, np.int64), np.zeros((1, 2), np.float32)
    empty = np.empty(0, np.float32)
    split, sums = np.zeros(0, np.float32), np.zeros(4096, np.float32)
    with pytest.raises(IndexError, match="scratch"):
        conv_depthwise_simd.depthwise_simd(x, w, bias, out, 14, 14, offsets, 16, 16, 1, 1, 1, 1, codes,
                                           params, True, empty, empty, np.zeros(16 * 16, np.float32), split,
                                           sums)
