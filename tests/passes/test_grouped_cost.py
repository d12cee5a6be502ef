"""The NumPy cost model's price of grouped 3x3 convs (RegNet, ResNeXt): the compiled direct kernel
(backends/numpy_ref/conv_grouped_jit.py) against its measured times, and -O2's choice between it and
grouped im2col on the layers where one measured clearly faster (bench/NOTES.md, 2026-12-01, regnet)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from test_depthwise_cost import MEASURED as DEPTHWISE_MEASURED

from convc.dsl import Network
from convc.passes.conv_cost import ConvShape
from convc.passes.conv_cost_numpy import estimate_numpy, grouped_gemm_efficiency

# The profile measured on the shared 2-core EPYC (test_depthwise_cost's) with its weight streaming rate,
# as cpu_profile.py measured it there at 18:36 UTC: a forward reads every GEMM's weights from memory.
MEASURED = replace(DEPTHWISE_MEASURED, weight_bytes_per_s=13.2e9)

# (channels, groups, stride, input size, ms): the compiled kernel alone with a ReLU, float32, batch 1,
# 1 thread, best of 5 medians of 5, shared 2-core EPYC, 2026-12-01 19:11 UTC, load average 2.8-3.1.
MEASURED_JIT = [
    (64, 4, 2, 112, 0.920), (128, 8, 2, 56, 0.527), (128, 8, 1, 28, 0.401), (288, 18, 2, 28, 0.439),
    (288, 18, 1, 14, 0.307), (672, 42, 2, 14, 0.444), (672, 42, 1, 7, 0.336), (48, 6, 2, 112, 0.443),
    (104, 13, 1, 28, 0.196), (440, 55, 1, 7, 0.152), (96, 2, 2, 112, 3.484), (96, 2, 1, 56, 2.916),
    (432, 9, 1, 14, 1.072), (1008, 21, 1, 7, 1.162), (128, 32, 1, 56, 0.491), (512, 32, 2, 28, 0.791),
    (1024, 32, 1, 7, 0.871), (784, 49, 2, 14, 0.520)]


def grouped_shape(channels: int, groups: int, stride: int, size: int) -> ConvShape:
    net = Network("grouped")
    x = net.input((1, channels, size, size))
    net.output(net.conv2d(x, channels, 3, stride=stride, padding=1, groups=groups, name="g"))
    return ConvShape.of(net.graph.node("g"), net.graph)


@pytest.mark.parametrize("channels, groups, stride, size, ms", MEASURED_JIT)
def test_the_compiled_price_is_near_the_measured_time(channels: int, groups: int, stride: int, size: int,
                                                      ms: float) -> None:
    modelled = estimate_numpy(grouped_shape(channels, groups, stride, size), "direct", MEASURED,
                              compiled=True) * 1e3
    assert ms / 1.3 < modelled < ms * 1.3


# (channels, groups, stride, input size, the faster algorithm): one-layer graphs with their ReLU,
# alternating rounds (bench/bench_conv_algos.py), where the two differed by 15% or more.
FASTER = [
    (64, 4, 2, 112, "direct"), (128, 8, 2, 56, "direct"), (128, 8, 1, 28, "direct"),
    (672, 42, 1, 7, "direct"), (48, 6, 2, 112, "direct"), (208, 26, 1, 14, "direct"),
    (440, 55, 1, 7, "direct"), (96, 2, 1, 56, "direct"),
    (128, 32, 1, 56, "direct"), (256, 32, 2, 56, "direct"), (256, 32, 1, 28, "direct"),
    (1008, 21, 1, 7, "im2col"),
]


@pytest.mark.parametrize("channels, groups, stride, size, faster", FASTER)
def test_the_faster_algorithm_is_priced_lower(channels: int, groups: int, stride: int, size: int,
                                              faster: str) -> None:
    shape = grouped_shape(channels, groups, stride, size)
    times = {a: estimate_numpy(shape, a, MEASURED, compiled=True) for a in ("direct", "im2col")}
    assert min(times, key=times.__getitem__) == faster


def test_without_numba_direct_keeps_the_numpy_price() -> None:
    """CONVC_NUMBA=0 runs NumPy's per-offset GEMMs, priced as such: well above the compiled kernel and
    above grouped im2col; an ungrouped conv's GEMM rate is the profile's own."""
    shape = grouped_shape(128, 8, 1, 28)
    numpy_direct = estimate_numpy(shape, "direct", MEASURED, compiled=False)
    assert numpy_direct > 2 * estimate_numpy(shape, "direct", MEASURED, compiled=True)
    assert numpy_direct > estimate_numpy(shape, "im2col", MEASURED, compiled=False)
    assert grouped_gemm_efficiency(64 << 20, 1) == 1.0
    assert grouped_gemm_efficiency(1 << 20, 8) == 1.0
    assert grouped_gemm_efficiency(8 << 20, 8) < 1.0


def test_groups_wider_than_the_kernel_takes_keep_the_numpy_price() -> None:
    """conv_grouped_jit takes groups of up to 64 input channels (MAX_GROUP_CHANNELS); wider ones
    (RegNet-X 16GF's 128, RegNet-Y 32GF's 232) run NumPy's direct loop, so they are priced as it is."""
    widest = grouped_shape(128, 2, 1, 14)
    assert estimate_numpy(widest, "direct", MEASURED, compiled=True) < estimate_numpy(
        widest, "direct", MEASURED, compiled=False)
    wider = grouped_shape(256, 2, 1, 14)
    assert estimate_numpy(wider, "direct", MEASURED, compiled=True) == estimate_numpy(
        wider, "direct", MEASURED, compiled=False)
