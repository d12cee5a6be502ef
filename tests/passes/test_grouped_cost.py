"""The NumPy cost model's price of grouped 3x3 convs (RegNet, ResNeXt): the compiled direct kernels
(backends/numpy_ref/conv_grouped_simd.py for groups of 8 or more channels, conv_grouped_jit.py for 2-7)
against their measured times, and -O2's choice between direct and grouped im2col on the layers where one
measured clearly faster (bench/NOTES.md, 2026-12-01, regnet and grouped)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from test_depthwise_cost import MEASURED as DEPTHWISE_MEASURED

from convc.dsl import Network
from convc.passes.conv_cost import ConvShape
from convc.passes.conv_cost_grouped import grouped_simd_seconds
from convc.passes.conv_cost_numpy import (
    estimate_numpy, grouped_gemm_efficiency, grouped_jit_seconds, padded_elements,
)

# The profile measured on the shared 2-core EPYC (test_depthwise_cost's) with its weight streaming rate,
# as cpu_profile.py measured it there at 18:36 UTC: a forward reads every GEMM's weights from memory.
MEASURED = replace(DEPTHWISE_MEASURED, weight_bytes_per_s=13.2e9)

# (channels, groups, stride, input size, ms): conv_grouped_jit alone with a ReLU, float32, batch 1,
# 1 thread, best of 5 medians of 5, shared 2-core EPYC, 2026-12-01 19:11 UTC, load average 2.8-3.1 (the
# layers of that run with groups of fewer than 8 channels; wider ones now run conv_grouped_simd).
MEASURED_JIT = [(128, 32, 1, 56, 0.491)]

# conv_grouped_simd alone with a ReLU, float32, batch 1, 1 thread, medians of 5 alternating with the
# other algorithms, shared 2-core EPYC, 2026-12-01 21:30 UTC, load average 1.3: every 4th of the 82
# layers the price was fitted to (passes/conv_cost_grouped.py; worst of all 82: 0.74 of the measured).
MEASURED_SIMD = [
    (32, 2, 2, 112, 0.491), (160, 10, 1, 14, 0.181), (128, 8, 2, 56, 0.521), (672, 42, 2, 14, 0.371),
    (168, 7, 2, 56, 0.903), (912, 38, 2, 14, 0.571), (192, 4, 2, 56, 1.691), (1008, 21, 2, 14, 0.886),
    (104, 13, 1, 28, 0.218), (440, 55, 1, 7, 0.159), (320, 20, 1, 14, 0.320), (48, 2, 1, 56, 0.750),
    (336, 14, 1, 14, 0.432), (216, 9, 1, 28, 0.903), (224, 4, 2, 112, 8.822), (896, 16, 2, 28, 3.021),
    (256, 32, 1, 28, 0.477), (1024, 32, 1, 7, 0.541), (1024, 32, 2, 28, 2.174), (512, 64, 2, 56, 1.733),
    (2048, 64, 2, 14, 1.502)]


def grouped_shape(channels: int, groups: int, stride: int, size: int) -> ConvShape:
    net = Network("grouped")
    x = net.input((1, channels, size, size))
    net.output(net.conv2d(x, channels, 3, stride=stride, padding=1, groups=groups, name="g"))
    return ConvShape.of(net.graph.node("g"), net.graph)


@pytest.mark.parametrize("channels, groups, stride, size, ms", MEASURED_JIT + MEASURED_SIMD)
def test_the_compiled_price_is_near_the_measured_time(channels: int, groups: int, stride: int, size: int,
                                                      ms: float) -> None:
    modelled = estimate_numpy(grouped_shape(channels, groups, stride, size), "direct", MEASURED,
                              compiled=True) * 1e3
    assert ms / 1.35 < modelled < ms * 1.35


# (channels, groups, stride, input size, the faster algorithm): one-layer graphs with their ReLU,
# alternating rounds (bench/bench_conv_algos.py), where the two differed by 15% or more; the last four
# the kernels alone at 21:30 (conv_grouped_simd, where im2col had won against conv_grouped_jit on
# RegNet-X 3.2GF's last stage: 0.76 ms against 1.10; the wide groups of RegNet-X 16GF, -Y 32GF).
FASTER = [
    (64, 4, 2, 112, "direct"), (128, 8, 2, 56, "direct"), (128, 8, 1, 28, "direct"),
    (672, 42, 1, 7, "direct"), (48, 6, 2, 112, "direct"), (208, 26, 1, 14, "direct"),
    (440, 55, 1, 7, "direct"), (96, 2, 1, 56, "direct"),
    (128, 32, 1, 56, "direct"), (256, 32, 2, 56, "direct"), (256, 32, 1, 28, "direct"),
    (1008, 21, 1, 7, "direct"), (896, 7, 1, 14, "direct"), (512, 4, 1, 28, "direct"),
    (1392, 6, 2, 28, "direct"),
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


def test_groups_of_any_width_from_8_take_the_simd_price() -> None:
    """Groups of 8 or more channels (RegNet-X 16GF's 128, RegNet-Y 32GF's 232) run conv_grouped_simd
    and are priced as it (conv_cost_grouped.py), below NumPy's direct loop; 7 take conv_grouped_jit's."""
    for width in (8, 128, 232):
        shape = grouped_shape(2 * width, 2, 1, 14)
        assert estimate_numpy(shape, "direct", MEASURED, compiled=True) == grouped_simd_seconds(
            shape, "float32", 1, padded_elements(shape))
        assert estimate_numpy(shape, "direct", MEASURED, compiled=True) < estimate_numpy(
            shape, "direct", MEASURED, compiled=False)
    narrow = grouped_shape(14, 2, 1, 14)
    assert estimate_numpy(narrow, "direct", MEASURED, compiled=True) == grouped_jit_seconds(narrow, "float32")
