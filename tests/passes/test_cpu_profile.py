"""The NumPy backend's measured CPU profile: calibration with a fake clock, the per-machine cache
(written, reused, refused, rebuilt), the shipped fallback, and a cost model that follows the profile."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from convc.backends.numpy_ref import jit
from convc.compiler import optimize
from convc.dsl import Network
from convc.passes import conv_algo, cpu_profile
from convc.passes.conv_cost import ConvShape
from convc.passes.conv_cost_numpy import estimate_numpy, gemm_seconds
from convc.passes.cpu_profile import (GEMM_CLASSES, SHIPPED, NumpyProfile, calibrate, calibration_enabled,
                                      machine_key, numpy_profile, profile_path)


class FakeTimer:
    """Every measured call takes `seconds`; counts the calls."""

    def __init__(self, seconds: float = 1e-3) -> None:
        self.seconds = seconds
        self.calls = 0

    def __call__(self, fn: object) -> float:
        self.calls += 1
        return self.seconds


def test_calibration_turns_fake_timings_into_rates() -> None:
    profile = calibrate("float32", FakeTimer(1e-3))
    assert [d for d, _ in profile.gemm_rates] == list(GEMM_CLASSES)
    for d, rate in profile.gemm_rates:  # (512 x 512) @ (512 x d) in one millisecond
        assert rate == pytest.approx(512 * 512 * d / 1e-3)
    assert profile.transform_s_per_column["in4"] == pytest.approx(1e-3 / 8192)
    # np.pad of 64x56x56 -> 64x58x58, float32, read + written in a millisecond
    assert profile.copy_bytes_per_s == pytest.approx((64 * 56 * 56 + 64 * 58 * 58) * 4 / 1e-3)
    assert profile.gather_bytes_per_s == pytest.approx(2 * 64 * 9 * 56 * 56 * 4 / 1e-3)
    assert profile.weight_bytes_per_s == pytest.approx(64 * 2 ** 20 / 1e-3)  # 64 MiB of weights streamed


def test_gemm_rate_is_exact_at_measured_points_monotone_between_and_clamped() -> None:
    p = SHIPPED["float32"]
    for d, rate in p.gemm_rates:
        assert p.gemm_rate(d) == pytest.approx(rate)
    between = [p.gemm_rate(d) for d in range(16, 33)]
    assert between == sorted(between)
    assert p.gemm_rate(1) == p.gemm_rates[0][1] and p.gemm_rate(10 ** 6) == p.gemm_rates[-1][1]


def test_a_real_calibration_measures_positive_finite_rates() -> None:
    profile = calibrate("float64")
    assert NumpyProfile.from_dict(profile.to_dict()) == profile  # validates every rate


@pytest.mark.parametrize("field,value", [("copy_bytes_per_s", -1.0), ("call_overhead_s", math.nan),
                                         ("gather_bytes_per_s", 0.0)])
def test_a_profile_with_a_nonpositive_or_nan_rate_is_refused(field: str, value: float) -> None:
    bad = dataclasses.replace(SHIPPED["float32"], **{field: value}).to_dict()
    with pytest.raises(ValueError, match="rate"):
        NumpyProfile.from_dict(bad)


def test_a_profile_with_part_of_the_compiled_transform_rates_is_refused() -> None:
    data = SHIPPED["float32"].to_dict()
    del data["transform_s_per_column"]["compiled_out4_plane"]
    with pytest.raises(ValueError, match="compiled Winograd transform rate is missing"):
        NumpyProfile.from_dict(data)
    assert NumpyProfile.from_dict(SHIPPED["float32"].to_dict()) == SHIPPED["float32"]


# ------------------------------------------------------------------ the cache
def test_the_profile_is_measured_once_then_read_from_the_cache(plan_cache_dir: Path) -> None:
    timer = FakeTimer()
    first = numpy_profile("float32", timer=timer)
    path = profile_path(machine_key("float32"))
    assert path.exists() and path.parent == plan_cache_dir / "profiles"
    data = json.loads(path.read_text())
    assert data["key"]["threads"] >= 1 and data["key"]["dtype"] == "float32"
    calls = timer.calls
    assert numpy_profile("float32", timer=timer) == first and timer.calls == calls


@pytest.mark.parametrize("damage", ["garbage", "other-machine", "bad-rate"])
def test_a_corrupt_or_foreign_profile_is_refused_and_measured_again(damage: str) -> None:
    timer = FakeTimer(2e-3)
    numpy_profile("float32", timer=timer)
    path = profile_path(machine_key("float32"))
    data = json.loads(path.read_text())
    if damage == "garbage":
        path.write_text("{not json")
    elif damage == "other-machine":
        data["key"]["threads"] += 7
        path.write_text(json.dumps(data))
    else:
        data["profile"]["copy_bytes_per_s"] = -5
        path.write_text(json.dumps(data))
    log: list[str] = []
    timer.calls = 0
    profile = numpy_profile("float32", log=log, timer=timer)
    assert timer.calls > 0 and "refused" in log[0] and str(path) in log[0]
    assert profile.copy_bytes_per_s > 0
    assert json.loads(path.read_text())["key"] == machine_key("float32")  # rebuilt


def test_an_unwritable_cache_is_logged_and_the_measured_profile_still_used(plan_cache_dir: Path) -> None:
    plan_cache_dir.mkdir(parents=True, exist_ok=True)
    (plan_cache_dir / "profiles").write_text("")  # a file where the profiles folder should be
    log: list[str] = []
    profile = numpy_profile("float32", log=log, timer=FakeTimer())
    assert profile.source.startswith("measured") and "not written" in log[0]


def test_calibration_off_uses_the_shipped_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    assert numpy_profile("float32", calibrate_now=False) is SHIPPED["float32"]
    monkeypatch.setenv("CONVC_CALIBRATE", "0")
    assert not calibration_enabled() and calibration_enabled(True)
    monkeypatch.setenv("CONVC_CALIBRATE", "1")
    assert calibration_enabled() and not calibration_enabled(False)


# ------------------------------------------------------------------ the model follows the profile
def conv_shape(channels: int, size: int, out_channels: int | None = None) -> ConvShape:
    net = Network("s")
    x = net.input((1, channels, size, size))
    net.output(net.conv2d(x, out_channels or channels, 3, padding=1, name="c"))
    return ConvShape.of(net.graph.node("c"), net.graph)


def flat_profile(**changes: object) -> NumpyProfile:
    """Every GEMM at 10 GMAC/s, copies and overheads free, transforms free unless changed."""
    free = {"in2": 0.0, "out2": 0.0, "in4": 0.0, "out4": 0.0}
    base = NumpyProfile("float32", "synthetic", ((1, 1e10), (1024, 1e10)), free, math.inf, math.inf,
                        math.inf, math.inf, 0.0, 0.0)
    return dataclasses.replace(base, **changes)


def test_with_only_gemms_costing_the_model_counts_the_multiplies() -> None:
    p = flat_profile()
    shape = conv_shape(64, 24)  # 24: whole tiles for both Winograd sizes
    assert estimate_numpy(shape, "im2col", p) == pytest.approx(shape.macs / 1e10)
    assert estimate_numpy(shape, "direct", p) == pytest.approx(shape.macs / 1e10)
    # F(2x2,3x3): 16 products per 4 outputs (2.25x fewer); F(4x4,3x3): 36 per 16 (4x fewer)
    assert estimate_numpy(shape, "winograd_2x2", p) == pytest.approx(shape.macs / 2.25 / 1e10)
    assert estimate_numpy(shape, "winograd_4x4", p) == pytest.approx(shape.macs / 4 / 1e10)


def test_an_untransformed_filter_costs_its_transform_gemm() -> None:
    p = flat_profile()
    shape = conv_shape(64, 24)
    extra = estimate_numpy(shape, "winograd_4x4", p, False) - estimate_numpy(shape, "winograd_4x4", p)
    assert extra == pytest.approx(gemm_seconds(36, 64 * 64, 9, p, 4))


def test_slow_small_gemms_make_the_model_leave_winograd_on_a_small_map() -> None:
    """512 channels at 7x7: F(4x4,3x3) has 4 tiles, so its GEMMs have N=4. With GEMMs of a small
    dimension 100x slower than large ones, im2col (N=49) is cheaper; with a flat rate, Winograd is."""
    shape = conv_shape(512, 7)
    flat = flat_profile()
    assert estimate_numpy(shape, "winograd_4x4", flat) < estimate_numpy(shape, "im2col", flat)
    steep = flat_profile(gemm_rates=((4, 1e8), (49, 1e10), (1024, 1e10)))
    assert estimate_numpy(shape, "winograd_4x4", steep) > estimate_numpy(shape, "im2col", steep)


def test_reading_the_weights_prices_f4_above_f2_on_a_14x14_map() -> None:
    """Measured (1 thread, 256 channels, fastest of 41 alternating runs): F(2x2) 2.32 ms, F(4x4) 2.59 ms
    at 14x14 (F(4x4)'s 36 filter matrices, 9.4 MB, are read for 16 tiles), F(4x4) far ahead at 56x56.
    The shipped profile ranks them so only because each GEMM pays for reading its weights."""
    p = SHIPPED["float32"]
    deep, wide = conv_shape(256, 14), conv_shape(64, 56)
    assert estimate_numpy(deep, "winograd_2x2", p) < estimate_numpy(deep, "winograd_4x4", p)
    assert estimate_numpy(wide, "winograd_4x4", p) < estimate_numpy(wide, "winograd_2x2", p)
    free_weights = dataclasses.replace(p, weight_bytes_per_s=math.inf)
    assert estimate_numpy(deep, "winograd_4x4", free_weights) < estimate_numpy(deep, "winograd_2x2", free_weights)


def test_choose_conv_algo_prices_with_the_calibrated_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a profile, -O2's times are the model's numbers for it and its pick is their minimum."""
    steep = flat_profile(gemm_rates=((4, 1e8), (49, 1e10), (1024, 1e10)), call_overhead_s=1e-6)
    monkeypatch.setattr(conv_algo, "numpy_profile", lambda dtype, enabled, log: steep)
    net = Network("deep")
    x = net.input((1, 512, 7, 7))
    net.output(net.conv2d(x, 512, 3, padding=1, name="c"))
    g, ctx, _ = optimize(net, check_numerics=False)
    lp = ctx.results["plan"].layer("c")
    shape = ConvShape.of(net.graph.node("c"), net.graph)
    assert lp.times == pytest.approx({a: estimate_numpy(shape, a, steep) for a in lp.times})
    assert lp.algo == min(lp.times, key=lp.times.get) == "im2col"


def test_the_pass_option_turns_calibration_on_for_one_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(conv_algo, "numpy_profile",
                        lambda dtype, enabled, log: seen.append(enabled) or SHIPPED[dtype])
    monkeypatch.setattr(cpu_profile, "calibrate", lambda *a, **k: pytest.fail("must not measure"))
    net = Network("one")
    net.output(net.conv2d(net.input((1, 4, 8, 8)), 4, 3, name="c"))
    optimize(net, check_numerics=False)
    from convc.pass_manager import PassContext
    from convc.registry import get_backend

    ctx = PassContext(backend=get_backend("numpy"), options={"choose_conv_algo": {"calibrate": True}})
    conv_algo.choose_conv_algo(net.graph.copy(), ctx)
    assert seen == [False, True]


# ------------------------------------------------------------------ the compiled Winograd transforms
COMPILED_KEYS = {f"compiled_{side}{t}{part}" for side in ("in", "out") for t in (2, 4)
                 for part in ("", "_plane")}


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
def test_compiled_transforms_are_measured_only_where_they_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jit.SWITCH, "1")
    rates = calibrate("float32", FakeTimer(1e-3)).transform_s_per_column
    assert COMPILED_KEYS <= set(rates)
    for side, t in (("in", 4), ("out", 2)):  # each probe's modelled time is its (fake) measured time
        for c, size in cpu_profile.COMPILED_PROBES:
            columns = c * math.ceil(size / t) ** 2
            assert columns * rates[f"compiled_{side}{t}"] + c * rates[f"compiled_{side}{t}_plane"] == \
                pytest.approx(1e-3)
    compiled_key = machine_key("float32")
    monkeypatch.setenv(jit.SWITCH, "0")
    assert not COMPILED_KEYS & set(calibrate("float32", FakeTimer(1e-3)).transform_s_per_column)
    assert not COMPILED_KEYS & set(numpy_profile("float32", calibrate_now=False).transform_s_per_column)
    assert machine_key("float32") != compiled_key  # a profile measured with numba is not reused without


def test_the_model_prices_the_compiled_transforms_where_the_profile_has_them() -> None:
    """64 channels at 24x24, F(4x4): 36 tiles per channel; the compiled sides replace every copy and
    transform of the NumPy path (free in the flat profile) by their per-column and per-plane costs."""
    rates = {"compiled_in4": 2e-9, "compiled_in4_plane": 3e-7,
             "compiled_out4": 5e-9, "compiled_out4_plane": 7e-7}
    plain = flat_profile()
    compiled = flat_profile(transform_s_per_column={**plain.transform_s_per_column, **rates})
    shape = conv_shape(64, 24)
    extra = estimate_numpy(shape, "winograd_4x4", compiled) - estimate_numpy(shape, "winograd_4x4", plain)
    assert extra == pytest.approx(64 * 36 * (2e-9 + 5e-9) + 64 * (3e-7 + 7e-7))
    assert estimate_numpy(shape, "winograd_2x2", compiled) == estimate_numpy(shape, "winograd_2x2", plain)
