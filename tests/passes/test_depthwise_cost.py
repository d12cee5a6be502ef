"""The NumPy cost model's depthwise price against grouped im2col: on this machine's measured profile
and on the shipped constants, for the compiled kernel (numba) and the NumPy one, -O2 picks the
depthwise kernel for the depthwise layers of MobileNet v2, EfficientNet and ConvNeXt, where it measured
faster (bench/NOTES.md, 2026-12-01, dwcpu and dwjit sections); the compiled kernel's price against its
measured times."""
from __future__ import annotations

from dataclasses import replace

import pytest

from convc.backends.numpy_ref import jit
from convc.compiler import optimize
from convc.dsl import Network
from convc.passes import conv_algo
from convc.passes.conv_cost import ConvShape
from convc.passes.conv_cost_numpy import estimate_numpy
from convc.passes.cpu_profile import SHIPPED, NumpyProfile

# The profile passes/cpu_profile.py measured on the shared 2-core AMD EPYC, 1 BLAS thread, 2026-12-01.
MEASURED = NumpyProfile(
    "float32", "measured on AMD EPYC (1 BLAS thread(s)), 2026-12-01",
    ((2, 39.4e9), (4, 16.9e9), (8, 24.5e9), (16, 40.3e9), (32, 45.9e9), (64, 49.5e9), (128, 51.8e9),
     (256, 52.8e9)),
    {"in2": 1.45e-8, "out2": 1.64e-9, "in4": 4.45e-8, "out4": 2.01e-8},
    copy_bytes_per_s=26.6e9, gather_bytes_per_s=54.7e9, tile_gather_bytes_per_s=16.5e9,
    scatter_bytes_per_s=7.96e9, call_overhead_s=9.1e-7, slice_overhead_s=6.2e-8)

# (channels, map size, kernel, stride): MobileNet v2 (3x3), EfficientNet-B0 (5x5), ConvNeXt-Tiny (7x7);
# depthwise measured 0.15-0.9x of grouped im2col on every one (1 thread, float32, alternating rounds).
LAYERS = [(32, 112, 3, 1), (96, 112, 3, 2), (144, 56, 3, 1), (144, 56, 3, 2), (384, 14, 3, 1),
          (576, 14, 3, 2), (960, 7, 3, 1), (144, 56, 5, 2), (240, 28, 5, 1), (672, 14, 5, 1),
          (1152, 7, 5, 1), (96, 56, 7, 1), (384, 14, 7, 1), (768, 7, 7, 1)]


def depthwise_net(channels: int, size: int, kernel: int, stride: int) -> Network:
    net = Network("dw")
    x = net.input((1, channels, size, size))
    net.output(net.conv2d(x, channels, kernel, stride=stride, padding=kernel // 2, groups=channels,
                          name="dw"))
    return net


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("profile", [MEASURED, SHIPPED["float32"]], ids=["measured", "shipped"])
@pytest.mark.parametrize("channels, size, kernel, stride", LAYERS)
def test_depthwise_is_priced_below_grouped_im2col(channels: int, size: int, kernel: int, stride: int,
                                                  profile: NumpyProfile, compiled: bool) -> None:
    net = depthwise_net(channels, size, kernel, stride)
    shape = ConvShape.of(net.graph.node("dw"), net.graph)
    assert (estimate_numpy(shape, "depthwise", profile, compiled=compiled)
            < estimate_numpy(shape, "im2col", profile, compiled=compiled))


# (channels, map size, kernel, stride, ms): the compiled kernel (register-blocked: conv_depthwise_simd.py)
# with its bias, measured by bench/bench_depthwise.py's layer set and ShuffleNet's (1 thread, float32,
# batch 1, best of 40, shared 2-core EPYC, 2026-12-01 21:44 UTC, load average 3.7).
MEASURED_JIT = [
    (32, 112, 3, 1, 0.259), (96, 112, 3, 2, 0.413), (144, 56, 3, 1, 0.270), (144, 56, 3, 2, 0.154),
    (384, 14, 3, 1, 0.0686), (576, 14, 3, 2, 0.0681), (960, 7, 3, 1, 0.0737), (144, 56, 5, 2, 0.227),
    (240, 28, 5, 1, 0.230), (672, 14, 5, 1, 0.199), (1152, 7, 5, 1, 0.149), (96, 56, 7, 1, 0.597),
    (384, 14, 7, 1, 0.231), (768, 7, 7, 1, 0.193), (24, 28, 3, 2, 0.0237), (58, 28, 3, 1, 0.0442),
    (116, 14, 3, 2, 0.0271), (232, 7, 3, 1, 0.0306), (48, 56, 3, 2, 0.0658), (192, 28, 7, 1, 0.346)]


@pytest.mark.parametrize("channels, size, kernel, stride, ms", MEASURED_JIT)
def test_the_compiled_price_is_near_the_measured_time(channels: int, size: int, kernel: int, stride: int,
                                                      ms: float) -> None:
    net = depthwise_net(channels, size, kernel, stride)
    shape = ConvShape.of(net.graph.node("dw"), net.graph)
    modelled = estimate_numpy(shape, "depthwise", MEASURED, compiled=True) * 1e3
    assert ms / 1.6 < modelled < ms * 1.6


def test_the_compiled_price_follows_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the price is the compiled kernel's where numba runs, the NumPy one's with CONVC_NUMBA=0;
    3D layers (no compiled kernel) keep the NumPy price; float64 runs at half the vector width."""
    net = depthwise_net(144, 56, 3, 1)
    shape = ConvShape.of(net.graph.node("dw"), net.graph)
    compiled = estimate_numpy(shape, "depthwise", MEASURED, compiled=True)
    numpy_price = estimate_numpy(shape, "depthwise", MEASURED, compiled=False)
    assert compiled < numpy_price
    monkeypatch.setenv(jit.SWITCH, "0")
    assert estimate_numpy(shape, "depthwise", MEASURED) == numpy_price
    monkeypatch.setenv(jit.SWITCH, "1")
    assert estimate_numpy(shape, "depthwise", MEASURED) == (compiled if jit.installed() else numpy_price)
    three_d = replace(shape, in_spatial=(8, 56, 56), out_spatial=(8, 56, 56), kernel=(3, 3, 3),
                      padding=((1, 1),) * 3)
    assert (estimate_numpy(three_d, "depthwise", MEASURED, compiled=True)
            == estimate_numpy(three_d, "depthwise", MEASURED, compiled=False))
    f64 = replace(MEASURED, dtype="float64")
    assert compiled < estimate_numpy(shape, "depthwise", f64, compiled=True) < 2 * compiled


def test_more_taps_and_more_channels_cost_more() -> None:
    def seconds(channels: int, size: int, kernel: int) -> float:
        net = depthwise_net(channels, size, kernel, 1)
        return estimate_numpy(ConvShape.of(net.graph.node("dw"), net.graph), "depthwise", MEASURED)

    assert seconds(96, 56, 3) < seconds(96, 56, 5) < seconds(96, 56, 7)
    assert seconds(96, 28, 3) < seconds(192, 28, 3) < seconds(384, 28, 3)


@pytest.mark.parametrize("switch", ["1", "0"])
def test_o2_picks_depthwise_in_a_mobilenet_block(switch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jit.SWITCH, switch)
    monkeypatch.setattr(conv_algo, "numpy_profile", lambda dtype, enabled, log: MEASURED)
    net = Network("mbconv")
    x = net.input((1, 24, 56, 56))
    y = net.relu6(net.conv2d(x, 144, 1, name="expand"))
    y = net.relu6(net.conv2d(y, 144, 3, stride=2, padding=1, groups=144, name="dw"))
    net.output(net.conv2d(y, 32, 1, name="project"))
    _, ctx, _ = optimize(net, check_numerics=False)
    plan = ctx.results["plan"]
    assert plan.layer("dw").algo == "depthwise"
    assert plan.layer("expand").algo != "depthwise"
