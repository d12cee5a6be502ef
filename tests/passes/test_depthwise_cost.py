"""The NumPy cost model's depthwise price against grouped im2col: on this machine's measured profile
and on the shipped constants, -O2 picks the depthwise kernel for the depthwise layers of MobileNet v2,
EfficientNet and ConvNeXt, where it measured faster (bench/NOTES.md, 2026-12-01, dwcpu section)."""
from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("profile", [MEASURED, SHIPPED["float32"]], ids=["measured", "shipped"])
@pytest.mark.parametrize("channels, size, kernel, stride", LAYERS)
def test_depthwise_is_priced_below_grouped_im2col(channels: int, size: int, kernel: int, stride: int,
                                                  profile: NumpyProfile) -> None:
    net = depthwise_net(channels, size, kernel, stride)
    shape = ConvShape.of(net.graph.node("dw"), net.graph)
    assert estimate_numpy(shape, "depthwise", profile) < estimate_numpy(shape, "im2col", profile)


def test_more_taps_and_more_channels_cost_more() -> None:
    def seconds(channels: int, size: int, kernel: int) -> float:
        net = depthwise_net(channels, size, kernel, 1)
        return estimate_numpy(ConvShape.of(net.graph.node("dw"), net.graph), "depthwise", MEASURED)

    assert seconds(96, 56, 3) < seconds(96, 56, 5) < seconds(96, 56, 7)
    assert seconds(96, 28, 3) < seconds(192, 28, 3) < seconds(384, 28, 3)


def test_o2_picks_depthwise_in_a_mobilenet_block(monkeypatch: pytest.MonkeyPatch) -> None:
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
