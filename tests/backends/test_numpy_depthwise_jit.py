"""The compiled depthwise kernel (backends/numpy_ref/conv_depthwise_jit.py) against torch in float64:
the epilogues it runs on each output plane (with NaN and inf reaching them), the chains of more
residual adds than it takes (left to apply_epilogue), both of its layouts, both dtypes, and the switch:
CONVC_NUMBA=0 runs the NumPy kernels to the same numbers. Shapes, strides, padding and multipliers are
covered by test_numpy_depthwise.py,
which runs every case through both compiled layouts as well."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_numpy_conv import TORCH_ACTIVATIONS, conv_graph, torch_conv

from convc.backends.numpy_ref import backend, conv_depthwise, conv_depthwise_jit, jit
from convc.ir import Graph
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba is not installed")

MORE_ACTIVATIONS = {
    "clip": lambda y, lo, hi: torch.clamp(y, lo, hi),
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "silu": F.silu,
}
EPILOGUES = {
    "relu": (("relu",),),
    "relu6": (("clip", 0.0, 6.0),),
    "hardswish": (("hardswish",),),
    "hardsigmoid": (("hardsigmoid",),),
    "leaky_relu": (("leaky_relu", 0.125),),
    "silu": (("silu",),),
    "clip then add then relu": (("clip", -1.0, 1.5), ("add",), ("relu",)),
    "add first": (("add",), ("hardswish",)),
    "three adds (more than the kernel takes)": (("add",), ("silu",), ("add",), ("add",), ("relu",)),
}


@pytest.fixture(autouse=True)
def torch_activations(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle (test_numpy_conv.torch_conv) learns the activations fused here; compiled kernels on,
    conv_depthwise_jit.py's (the register-blocked kernel has test_numpy_depthwise_simd.py)."""
    for name, fn in MORE_ACTIVATIONS.items():
        monkeypatch.setitem(TORCH_ACTIVATIONS, name, fn)
    monkeypatch.setenv(jit.SWITCH, "1")
    monkeypatch.setattr(conv_depthwise, "REGISTER_BLOCKED", False)


def summed_error(got: np.ndarray, expected: np.ndarray, graph: Graph, inputs: list[np.ndarray]) -> float:
    """max |got - expected| over the size of what is summed: the largest |x| times the largest sum of a
    filter's |w|, plus |b| and the residuals (rel_err's max |expected| would make a ReLU'd output of one
    small value left by cancellation, 2e-4 out of terms near 1, fail float32's budget)."""
    node = graph["conv"]
    weight = np.abs(graph.param_of(node, "weight").astype(np.float64))
    bias = graph.param_of(node, "bias")
    scale = (np.max(np.abs(inputs[0])) * np.max(weight.reshape(weight.shape[0], -1).sum(axis=1))
             + (0.0 if bias is None else float(np.max(np.abs(bias))))
             + sum(float(np.max(np.abs(r))) for r in inputs[1:]))
    error = float(np.max(np.abs(got.astype(np.float64) - expected)))
    return error / max(scale, float(np.max(np.abs(expected))), 1e-30)


def run_both(graph: object, inputs: list[np.ndarray], dtype: str,
             monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """(compiled output, NumPy kernels' output) of the one-conv `graph`."""
    model = backend.compile(graph, dtype=dtype)
    compiled = model.run(*inputs)[0]
    monkeypatch.setenv(jit.SWITCH, "0")
    fallback = model.run(*inputs)[0]
    monkeypatch.setenv(jit.SWITCH, "1")
    return compiled, fallback


@pytest.mark.parametrize("layout", ["planes", "channels_last"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epilogue", list(EPILOGUES), ids=list(EPILOGUES))
def test_fused_activations_match_torch_with_nan_and_inf(epilogue: str, dtype: str, layout: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Values around every activation's kinks, NaN and +-inf in the input: the same NaNs as torch, the
    finite values within the dtype's budget, and the NumPy kernels agreeing."""
    steps = EPILOGUES[epilogue]
    graph = conv_graph(2, (2, 5, 8, 7), 5, 3, 1, 1, 1, 5, True, algo="depthwise", epilogue=steps)
    rng = np.random.default_rng(7)
    inputs = [(3 * rng.standard_normal(n.type.shape)).astype(np.float32) for n in graph.inputs]
    x = inputs[0]
    x[0, 1, 3, 3], x[1, 2, 0, 0], x[1, 3, 5, 6] = np.nan, np.inf, -np.inf
    up_to = 1 << 40 if layout == "channels_last" else 0
    monkeypatch.setattr(conv_depthwise_jit, "CHANNELS_LAST_UP_TO", up_to)
    monkeypatch.setattr(conv_depthwise_jit, "CHANNELS_LAST_FROM", 0)
    with np.errstate(invalid="ignore", over="ignore"):
        compiled, fallback = run_both(graph, inputs, dtype, monkeypatch)
    expected = torch_conv(graph, inputs)
    assert compiled.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(expected))
    np.testing.assert_array_equal(np.isnan(fallback), np.isnan(expected))
    assert np.isnan(expected).any()
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(compiled[infinite], expected[infinite])  # the same infinities
    finite = np.isfinite(expected)
    assert rel_err(compiled[finite], expected[finite]) <= budget(dtype, "depthwise")
    assert rel_err(fallback[finite], expected[finite]) <= budget(dtype, "depthwise")


@settings(max_examples=40, deadline=None)
@example(channels=1, mult=1, height=1, width=3, kernel=5, stride=1, dilation=1, pad=2, epilogue="relu",
         dtype="float32", layout=0, seed=1)  # one value left by ReLU, 2e-4 from cancellation: summed_error
@given(channels=st.integers(1, 6), mult=st.integers(1, 2), height=st.integers(1, 9), width=st.integers(3, 12),
       kernel=st.sampled_from([1, 3, 5, 7]), stride=st.integers(1, 3), dilation=st.integers(1, 2),
       pad=st.integers(0, 3), epilogue=st.sampled_from(list(EPILOGUES)[:5]),
       dtype=st.sampled_from(["float32", "float64"]), layout=st.sampled_from([0, 1 << 40]),
       seed=st.integers(0, 50))
def test_compiled_matches_torch_and_the_numpy_kernels(channels: int, mult: int, height: int, width: int,
                                                      kernel: int, stride: int, dilation: int, pad: int,
                                                      epilogue: str, dtype: str, layout: int,
                                                      seed: int) -> None:
    """Any 2D shape (rows as few as 1), kernel, stride, dilation, padding, multiplier and fused
    activation, in both dtypes and layouts: within the budget of torch float64 and of the NumPy path."""
    span = dilation * (kernel - 1) + 1
    if span > height + 2 * pad or span > width + 2 * pad:
        return  # the kernel does not fit: the schema rejects the layer
    graph = conv_graph(2, (2, channels, height, width), channels * mult, kernel, stride, pad, dilation,
                       channels, seed % 2 == 0, algo="depthwise", epilogue=EPILOGUES[epilogue])
    inputs = [np.random.default_rng(seed).standard_normal(graph.inputs[0].type.shape).astype(np.float32)]
    with mock.patch.object(conv_depthwise_jit, "CHANNELS_LAST_UP_TO", layout), \
            mock.patch.object(conv_depthwise, "REGISTER_BLOCKED", False), \
            mock.patch.object(conv_depthwise_jit, "CHANNELS_LAST_FROM", 0), \
            mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        model = backend.compile(graph, dtype=dtype)
        compiled = model.run(*inputs)[0]
        with mock.patch.dict("os.environ", {jit.SWITCH: "0"}):
            fallback = model.run(*inputs)[0]
    expected = torch_conv(graph, inputs)
    assert summed_error(compiled, expected, graph, inputs) <= budget(dtype, "depthwise")
    assert summed_error(compiled, fallback, graph, inputs) <= 2 * budget(dtype, "depthwise")


def test_the_switch_picks_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """With numba on, 2D depthwise layers run compiled and 3D ones do not; CONVC_NUMBA=0 runs none."""
    calls: list[int] = []
    real = conv_depthwise_jit.conv_depthwise_jit
    monkeypatch.setattr("convc.backends.numpy_ref.conv_depthwise.conv_depthwise_jit",
                        lambda conv: calls.append(1) or real(conv))
    two_d = backend.compile(conv_graph(2, (1, 4, 6, 6), 4, 3, 1, 1, 1, 4, True, algo="depthwise"),
                            dtype="float32")
    three_d = backend.compile(conv_graph(3, (1, 3, 4, 4, 4), 3, 3, 1, 1, 1, 3, True, algo="depthwise"),
                              dtype="float32")
    x2, x3 = np.ones((1, 4, 6, 6), np.float32), np.ones((1, 3, 4, 4, 4), np.float32)
    two_d.run(x2)
    three_d.run(x3)
    assert calls == [1]
    monkeypatch.setenv(jit.SWITCH, "0")
    two_d.run(x2)
    assert calls == [1]
