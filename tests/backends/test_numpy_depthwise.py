"""The NumPy backend's depthwise convolution (algo "depthwise") against torch.nn.functional in float64:
1D/2D/3D, stride, dilation, asymmetric padding, kernel sizes and channel multipliers (hypothesis), fused
epilogues, NaN propagation, the error for a conv that is not depthwise, and the plan choosing it. Each
case runs in the NumPy kernels' two layouts (channel-major and channels-last, CONVC_NUMBA=0), in the
compiled kernel's two (planes and channels-last, conv_depthwise_jit.py) and in the register-blocked one
(conv_depthwise_simd.py, one filter per channel: others take the planes), with blocks small enough that
a layer spans several of them."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numpy_conv import check, conv_graph, torch_conv

import convc
from convc.backends.numpy_ref import (
    backend,
    conv_depthwise,
    conv_depthwise_jit,
    conv_depthwise_rows,
    conv_depthwise_simd,
    jit,
)
from convc.errors import BackendError, OptionError

LAYOUTS = ("channel_major", "channels_last", "compiled_planes", "compiled_channels_last", "compiled_simd")


@contextmanager
def layout(kind: str, block_bytes: int = 256) -> Iterator[None]:
    """Every depthwise layer in `kind` (channels-last only where it applies: 1D/2D, one filter per
    channel; the compiled kernel only for 1D/2D, 3D layers then run channel-major), in blocks of
    `block_bytes` (a few rows or channels each). The compiled kinds skip where numba is missing."""
    compiled = kind.startswith("compiled")
    if compiled and not jit.installed():
        pytest.skip("numba is not installed")
    below = 1 << 40 if kind == "channels_last" else 0
    compiled_below = 1 << 40 if kind == "compiled_channels_last" else 0
    with mock.patch.dict(os.environ, {jit.SWITCH: "1" if compiled else "0"}), \
            mock.patch.object(conv_depthwise, "CHANNELS_LAST_BELOW", below), \
            mock.patch.object(conv_depthwise, "BLOCK_BYTES", block_bytes), \
            mock.patch.object(conv_depthwise_rows, "BLOCK_BYTES", block_bytes), \
            mock.patch.object(conv_depthwise_jit, "CHANNELS_LAST_UP_TO", compiled_below), \
            mock.patch.object(conv_depthwise_jit, "CHANNELS_LAST_FROM", 0 if compiled_below else 1 << 40), \
            mock.patch.object(conv_depthwise, "REGISTER_BLOCKED", kind == "compiled_simd"), \
            mock.patch.object(conv_depthwise_simd, "BLOCK_ELEMENTS", max(1, block_bytes // 8)):
        yield


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ndim, shape, mult, kernel, stride, padding, dilation", [
    (2, (2, 6, 9, 8), 1, 3, 1, 1, 1),
    (2, (1, 4, 10, 11), 2, 3, 2, 1, 1),
    (2, (1, 3, 12, 12), 1, 7, 1, 3, 1),
    (2, (1, 5, 9, 9), 3, (3, 5), (2, 1), ((0, 2), (1, 3)), (1, 2)),
    (2, (1, 4, 6, 6), 1, 3, 3, 0, 2),
    (2, (1, 2, 5, 5), 1, 5, 1, ((4, 0), (0, 4)), 1),
    (1, (2, 4, 13), 2, 5, 2, ((2, 1),), 1),
    (3, (1, 3, 5, 6, 5), 1, 3, (1, 2, 2), 1, 1),
], ids=["3x3", "mult2-stride2", "convnext7x7", "mixed", "dilated-stride3", "pad-only-taps", "1d", "3d"])
def test_depthwise_matches_torch(ndim: int, shape: tuple, mult: int, kernel: object, stride: object,
                                 padding: object, dilation: object, dtype: str, kind: str) -> None:
    c = shape[1]
    graph = conv_graph(ndim, shape, c * mult, kernel, stride, padding, dilation, c, True, algo="depthwise")
    with layout(kind):
        check(graph, dtype)


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 5), mult=st.integers(1, 3), size=st.integers(3, 11), kernel=st.integers(1, 5),
       stride=st.integers(1, 3), dilation=st.integers(1, 2), lo=st.integers(0, 3), hi=st.integers(0, 3),
       bias=st.booleans(), seed=st.integers(0, 100), kind=st.sampled_from(LAYOUTS),
       block_bytes=st.sampled_from([8, 200, 1 << 20]))
def test_depthwise_property(channels: int, mult: int, size: int, kernel: int, stride: int, dilation: int,
                            lo: int, hi: int, bias: bool, seed: int, kind: str, block_bytes: int) -> None:
    if dilation * (kernel - 1) + 1 > size + lo + hi:
        return  # the kernel does not fit: the schema rejects the layer (tested elsewhere)
    graph = conv_graph(2, (2, channels, size, size + 1), channels * mult, kernel, stride,
                       ((lo, hi), (hi, lo)), dilation, channels, bias, algo="depthwise")
    with layout(kind, block_bytes):
        check(graph, "float64", seed)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("ndim", [1, 2])
def test_a_fused_epilogue_with_a_residual_runs_block_by_block(ndim: int, kind: str) -> None:
    """Bias, add and an activation applied per block of rows or channels, each block's slice of the
    residual added to it (batch 2, several blocks)."""
    shape = (2, 6, 9, 10) if ndim == 2 else (2, 6, 23)
    graph = conv_graph(ndim, shape, 6, 3, (2,) * ndim, 1, 1, 6, True, algo="depthwise",
                       epilogue=(("add",), ("elu", 0.5), ("leaky_relu", 0.1)))
    with layout(kind, 64):
        check(graph, "float32")


def test_depthwise_fused_epilogue() -> None:
    graph = conv_graph(2, (1, 4, 7, 7), 4, 3, 1, 1, 1, 4, True, algo="depthwise",
                       epilogue=(("add",), ("relu",)))
    check(graph, "float32")


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("mult", [1, 2])
def test_nan_and_inf_propagate_as_in_torch(mult: int, kind: str) -> None:
    graph = conv_graph(2, (1, 3, 6, 6), 3 * mult, 3, 1, 1, 1, 3, True, algo="depthwise")
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    x[0, 2, 0, 0] = np.inf
    with layout(kind):
        out = backend.compile(graph, dtype="float64").run(x)[0]
    expected = torch_conv(graph, [x])
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out).sum() == mult * 9  # every filter of channel 1, over the 3x3 outputs that read it
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_a_nonfinite_weight_meets_the_padding_as_in_torch(kind: str) -> None:
    graph = conv_graph(2, (1, 2, 5, 5), 2, 3, 1, 1, 1, 2, False, algo="depthwise")
    graph.params["conv.weight"][0, 0, 0, 0] = np.inf  # 0 (padding) * inf is NaN in torch
    x = np.ones((1, 2, 5, 5), np.float32)
    with layout(kind):
        out = backend.compile(graph, dtype="float64").run(x)[0]
    expected = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(graph.params["conv.weight"]).double(),
                        padding=1, groups=2).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(expected).any()


def test_a_conv_that_is_not_depthwise_is_refused_by_name() -> None:
    graph = conv_graph(2, (1, 4, 6, 6), 4, 3, 1, 1, 1, 2, True, algo="depthwise", name="grouped")
    with pytest.raises(BackendError, match="node 'grouped'.*groups equal to the 4 input channels"):
        backend.compile(graph, dtype="float32")


def test_pinning_depthwise_on_a_dense_layer_names_the_valid_choices() -> None:
    net = convc.Network("pins")
    x = net.input((1, 4, 8, 8))
    net.output(net.conv2d(x, 4, 3, padding=1, name="dense"))
    with pytest.raises(OptionError, match="dense=depthwise.*depthwise needs groups equal to the input"):
        convc.compile(net, backend="numpy", algo={"dense": "depthwise"})


def test_the_plan_picks_depthwise_for_every_depthwise_layer_of_mobilenet_v2_on_sm90() -> None:
    import convc.models

    net = convc.models.get("mobilenet_v2", batch=1, input_size=64)
    model = convc.compile(net, backend="triton", dtype="float16", target="sm_90")
    convs = model.graph.nodes(("conv2d",))  # type: ignore[attr-defined]
    depthwise = [n for n in convs if n.attrs["groups"] > 1]
    assert len(depthwise) == 17
    assert all(n.attrs["algo"] == "depthwise" for n in depthwise)
    assert all(n.attrs["algo"] != "depthwise" for n in convs if n.attrs["groups"] == 1)
    plan = {lp.layer: lp for lp in model.plan.layers}  # type: ignore[attr-defined]
    assert all("depthwise" in plan[n.name].times for n in depthwise)


def test_the_numpy_plan_prices_depthwise_and_runs_it_within_budget() -> None:
    """On the NumPy backend depthwise is a candidate of every depthwise layer (the cost model decides),
    a 7x7 ConvNeXt-style layer picks it, and the compiled model matches torch."""
    net = convc.Network("convnext_block", seed=3)
    x = net.input((1, 32, 28, 28))
    y = net.conv2d(x, 32, 7, padding=3, groups=32, name="dw7")
    net.output(net.conv2d(y, 16, 1, name="pw"))
    model = convc.compile(net, backend="numpy", dtype="float64")
    plan = {lp.layer: lp for lp in model.plan.layers}  # type: ignore[attr-defined]
    assert "depthwise" in plan["dw7"].times and "depthwise" not in plan["pw"].times
    assert model.graph.node("dw7").attrs["algo"] == "depthwise"  # type: ignore[attr-defined]
    xs = np.random.default_rng(1).standard_normal((1, 32, 28, 28))
    w1, b1 = (torch.from_numpy(net.graph.params[f"dw7.{k}"]).double() for k in ("weight", "bias"))
    w2, b2 = (torch.from_numpy(net.graph.params[f"pw.{k}"]).double() for k in ("weight", "bias"))
    expected = F.conv2d(F.conv2d(torch.from_numpy(xs), w1, b1, padding=3, groups=32), w2, b2).numpy()
    np.testing.assert_allclose(model.run(xs)[0], expected, rtol=1e-10, atol=1e-10)
