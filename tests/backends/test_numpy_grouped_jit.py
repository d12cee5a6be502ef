"""The compiled grouped 3x3 kernel (backends/numpy_ref/conv_grouped_jit.py, the NumPy backend's "direct"
algorithm for groups of 2 to 7 channels: RegNet-Y 400MF's, ResNeXt's first stages) against torch in
float64: any groups, channels per group (including a last block of fewer than four output channels),
stride, dilation and padding, both dtypes, epilogues (activations, up to two residual adds in the
kernel, more after it) with NaN and inf reaching them, and the switch: CONVC_NUMBA=0 runs the NumPy
direct kernel to the same numbers."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numpy_conv import conv_graph, torch_conv

from convc.backends.numpy_ref import backend, conv_grouped_jit, conv_grouped_simd, jit
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba is not installed")

EPILOGUES = {
    "none": (),
    "relu": (("relu",),),
    "leaky_relu": (("leaky_relu", 0.125),),
    "add then relu": (("add",), ("relu",)),
    "relu then add": (("relu",), ("add",)),
    "sigmoid": (("sigmoid",),),
    "elu": (("elu", 0.5),),
    "two adds": (("add",), ("relu",), ("add",)),
    "three adds (NumPy's epilogue)": (("add",), ("add",), ("relu",), ("add",)),
}


def run_both(graph: object, inputs: list[np.ndarray], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(compiled output, NumPy direct kernel's output) of the one-conv `graph`."""
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        model = backend.compile(graph, dtype=dtype)
        compiled = model.run(*inputs)[0]
        with mock.patch.dict("os.environ", {jit.SWITCH: "0"}):
            fallback = model.run(*inputs)[0]
    return compiled, fallback


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(2, 4), in_group=st.integers(2, 5), out_group=st.integers(1, 9),
       height=st.integers(1, 12), width=st.integers(1, 40), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), pad=st.integers(0, 2), batch=st.integers(1, 2),
       epilogue=st.sampled_from(list(EPILOGUES)), dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 50))
def test_compiled_matches_torch_and_the_numpy_kernel(groups: int, in_group: int, out_group: int, height: int,
                                                     width: int, stride: int, dilation: int, pad: int,
                                                     batch: int, epilogue: str, dtype: str,
                                                     seed: int) -> None:
    """Any grouped 3x3 layer: within the direct algorithm's budget of torch float64 and of the NumPy path."""
    span = 2 * dilation + 1
    if span > height + 2 * pad or span > width + 2 * pad:
        return  # the kernel does not fit: the schema rejects the layer
    graph = conv_graph(2, (batch, groups * in_group, height, width), groups * out_group, 3, stride, pad,
                       dilation, groups, seed % 2 == 0, algo="direct", epilogue=EPILOGUES[epilogue])
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    compiled, fallback = run_both(graph, inputs, dtype)
    expected = torch_conv(graph, inputs)
    assert compiled.dtype == np.dtype(dtype)
    assert rel_err(compiled, expected) <= budget(dtype, "direct")
    assert rel_err(compiled, fallback) <= 2 * budget(dtype, "direct")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epilogue", list(EPILOGUES), ids=list(EPILOGUES))
def test_every_epilogue(epilogue: str, dtype: str) -> None:
    """Each epilogue, in the kernel (up to two residual adds) or after it, on a layer of two row blocks
    and a last block of three output channels."""
    graph = conv_graph(2, (1, 6, 40, 33), 14, 3, 1, 1, 1, 2, True, algo="direct",
                       epilogue=EPILOGUES[epilogue])
    inputs = [np.random.default_rng(5).standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    compiled, fallback = run_both(graph, inputs, dtype)
    expected = torch_conv(graph, inputs)
    assert rel_err(compiled, expected) <= budget(dtype, "direct")
    assert rel_err(fallback, expected) <= budget(dtype, "direct")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride", [1, 2])
def test_nan_and_inf_spread_as_in_torch(dtype: str, stride: int) -> None:
    """NaN and +-inf in the input, and an inf weight meeting the zero padding (0 * inf = NaN): the same
    NaNs and infinities as torch, the finite values within budget."""
    graph = conv_graph(2, (1, 8, 9, 11), 12, 3, stride, 1, 1, 2, True, algo="direct",
                       epilogue=(("relu",),))
    weight = graph.param_of(graph["conv"], "weight")
    weight[7, 1, 0, 0] = np.inf
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8, 9, 11)).astype(np.float32)
    x[0, 0, 4, 4], x[0, 5, 2, 7], x[0, 6, 8, 0] = np.nan, np.inf, -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        compiled, fallback = run_both(graph, [x], dtype)
        expected = torch_conv(graph, [x])
    assert np.isnan(expected).any() and np.isinf(expected).any()
    for got in (compiled, fallback):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        infinite = np.isinf(expected)
        np.testing.assert_array_equal(got[infinite], expected[infinite])
        finite = np.isfinite(expected)
        assert rel_err(got[finite], expected[finite]) <= budget(dtype, "direct")


def test_the_switch_picks_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """With numba on, a grouped 3x3 conv runs compiled; a grouped 5x5 one, a depthwise one (one input
    channel per group), an ungrouped one, and any with CONVC_NUMBA=0 run NumPy's direct kernel."""
    calls: list[int] = []
    real = conv_grouped_jit.conv_grouped_jit
    monkeypatch.setattr(conv_grouped_jit, "conv_grouped_jit", lambda conv: calls.append(1) or real(conv))
    monkeypatch.setenv(jit.SWITCH, "1")
    x = np.ones((1, 8, 6, 6), np.float32)
    for kernel, groups, runs_compiled in ((3, 4, True), (5, 4, False), (3, 8, False), (3, 1, False)):
        model = backend.compile(conv_graph(2, (1, 8, 6, 6), 8, kernel, 1, 2, 1, groups, True, algo="direct"),
                                dtype="float32")
        calls.clear()
        model.run(x)
        assert calls == ([1] if runs_compiled else []), (kernel, groups)
    monkeypatch.setenv(jit.SWITCH, "0")
    calls.clear()
    graph = conv_graph(2, (1, 8, 6, 6), 8, 3, 1, 1, 1, 4, True, algo="direct")
    backend.compile(graph, dtype="float32").run(x)
    assert calls == []


def test_wider_groups_run_the_simd_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of up to 7 input channels run this loop, of 8 or more conv_grouped_simd's kernel (the
    switch's other side: test_numpy_grouped_simd.py); both match torch."""
    calls: list[int] = []
    real = conv_grouped_jit.conv_grouped_jit
    monkeypatch.setattr(conv_grouped_jit, "conv_grouped_jit", lambda conv: calls.append(1) or real(conv))
    monkeypatch.setenv(jit.SWITCH, "1")
    rng = np.random.default_rng(7)
    for in_group, runs_here in ((conv_grouped_simd.MIN_GROUP_CHANNELS - 1, True),
                                (conv_grouped_simd.MIN_GROUP_CHANNELS, False)):
        c = 2 * in_group
        graph = conv_graph(2, (1, c, 5, 5), 4, 3, 1, 1, 1, 2, True, algo="direct")
        x = rng.standard_normal((1, c, 5, 5))
        calls.clear()
        got = backend.compile(graph, dtype="float64").run(x)[0]
        assert calls == ([1] if runs_here else []), in_group
        expected = torch_conv(graph, [x])
        assert rel_err(got, expected) <= budget("float64", "direct")


def test_stride_two_rows_of_every_parity_and_padding() -> None:
    """The phase split of stride-2 layers (conv_depthwise_jit.fill_phases, one pass over each row for
    both column phases): every input width from 3 to 10 with low padding 0 to 2 and any high padding,
    against torch float64."""
    rng = np.random.default_rng(11)
    for width in range(3, 11):
        for low in range(3):
            for high in range(3):
                graph = conv_graph(2, (1, 4, 5, width), 4, 3, 2, [(1, 1), (low, high)], 1, 2, True,
                                   algo="direct")
                x = rng.standard_normal((1, 4, 5, width)).astype(np.float32)
                with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
                    got = backend.compile(graph, dtype="float64").run(x)[0]
                assert rel_err(got, torch_conv(graph, [x])) <= budget("float64", "direct"), (width, low, high)
