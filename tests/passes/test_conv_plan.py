"""The algorithm plan: JSON round trip, the per-signature cache (replay, corruption), --plan files, and
measuring at -O3."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from convc.backends.numpy_ref import jit
from convc.compiler import optimize
from convc.device_profiles import blas_threads
from convc.dsl import Network
from convc.errors import OptionError
from convc.numerics import budget
from convc.passes import conv_algo
from convc.passes.conv_cost import COST_MODEL_VERSION
from convc.passes.cpu_profile import SHIPPED
from convc.passes.plan import LayerPlan, Plan
from pass_check import assert_same_outputs


def numpy_conv_algos() -> tuple[str, ...]:
    from convc.registry import get_backend

    return get_backend("numpy").capabilities.conv_algos


def net() -> Network:
    n = Network("plan")
    x = n.input((1, 3, 10, 10))
    y = n.relu(n.conv2d(x, 6, 3, padding=1, name="a"))
    y = n.conv2d(y, 6, 3, padding=1, name="b")
    n.output(n.conv2d(y, 6, 1, name="c"))
    return n


def cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "plans").glob("*.json"))


def test_plan_round_trips_through_json_and_prints_as_rows() -> None:
    _, ctx, _ = optimize(net(), check_numerics=False)
    plan = ctx.results["plan"]
    assert Plan.from_json(plan.to_json()) == plan
    rows = plan.to_table_rows()
    assert [r["layer"] for r in rows] == ["a", "b", "c"]
    assert set(rows[0]) == {"layer", "op", "algorithm", "reason", "budget"}
    assert rows[0]["algorithm"] == plan.algo_of("a") and rows[0]["budget"] == "1e-05 (float32)"
    with pytest.raises(ValueError):
        Plan.from_json('{"format": "something else"}')


def test_plan_is_cached_per_signature_and_replayed_without_modelling_again(
        plan_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, first, _ = optimize(net(), check_numerics=False)
    files = cache_files(plan_cache_dir)
    # keyed by the BLAS thread count, the CPU profile the model priced with (shipped in tests) and
    # whether the compiled (numba) kernels were priced
    profile = SHIPPED["float32"].fingerprint()
    kernels = "numba" if jit.enabled() else "numpy"
    assert [f.name for f in files] == [f"numpy-cpu-float32-model-{COST_MODEL_VERSION}-{blas_threads()}-"
                                       f"{profile}-{kernels}.json"]
    entries = json.loads(files[0].read_text())["entries"]
    assert len(entries) == 3 and all(e["algo"] for e in entries.values())

    def no_estimates(*args: object) -> float:
        raise AssertionError("the cost model ran although the plan is cached")

    monkeypatch.setattr(conv_algo, "estimate", no_estimates)
    monkeypatch.setattr(conv_algo, "estimate_numpy", no_estimates)
    _, second, _ = optimize(net(), check_numerics=False)
    assert second.results["plan"] == first.results["plan"]


def test_a_plan_modelled_with_numba_is_not_replayed_without_it(plan_cache_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """CONVC_NUMBA=0 prices the NumPy depthwise kernel, not the compiled one: another cache file."""
    monkeypatch.setenv(jit.SWITCH, "0")
    optimize(net(), check_numerics=False)
    assert [f.name.rsplit("-", 1)[1] for f in cache_files(plan_cache_dir)] == ["numpy.json"]
    if jit.installed():
        monkeypatch.setenv(jit.SWITCH, "1")
        optimize(net(), check_numerics=False)
        assert sorted(f.name.rsplit("-", 1)[1] for f in cache_files(plan_cache_dir)) == ["numba.json",
                                                                                         "numpy.json"]


def test_a_corrupt_cache_is_rebuilt_not_trusted(plan_cache_dir: Path) -> None:
    _, fresh, _ = optimize(net(), check_numerics=False)
    path = cache_files(plan_cache_dir)[0]
    path.write_text('{"format": "convc-plan-cache", "entries": [tru')
    _, ctx, _ = optimize(net(), check_numerics=False)
    assert ctx.results["plan"] == fresh.results["plan"]
    assert any("corrupt" in line and str(path) in line for line in ctx.log)
    assert len(json.loads(path.read_text())["entries"]) == 3  # rewritten whole


def test_a_cache_entry_that_does_not_check_out_is_recomputed(plan_cache_dir: Path) -> None:
    _, fresh, _ = optimize(net(), check_numerics=False)
    path = cache_files(plan_cache_dir)[0]
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        entry["algo"] = "winograd_9x9"  # not a candidate: never replayed
    path.write_text(json.dumps(data))
    g, ctx, _ = optimize(net(), check_numerics=False)
    assert ctx.results["plan"] == fresh.results["plan"]
    assert g.node("a").attrs["algo"] in ("direct", "im2col", "winograd_2x2", "winograd_4x4")


def test_plan_file_is_written_when_missing_then_followed(tmp_path: Path) -> None:
    path = tmp_path / "plans" / "mine.json"
    _, ctx, _ = optimize(net(), plan=path, check_numerics=False)
    saved = Plan.from_json(path.read_text())
    assert saved == ctx.results["plan"]
    # The user edits the plan: layer b goes to Winograd F(4x4), layer c to direct.
    edited = replace(saved, layers=tuple(
        LayerPlan(lp.layer, lp.op, lp.signature, {"b": "winograd_4x4", "c": "direct"}.get(lp.layer, lp.algo),
                  lp.source, lp.times, lp.budget) for lp in saved.layers))
    edited.save(path)
    before = net()
    g, ctx, _ = optimize(before, plan=path, check_numerics=False)
    assert g.node("b").attrs["algo"] == "winograd_4x4" and g.node("c").attrs["algo"] == "direct"
    assert ctx.results["plan"].layer("b").source == "plan file"
    assert ctx.results["plan"].layer("b").budget == budget("float32", "winograd_4x4")
    assert_same_outputs(before.graph, g, "float32")


def test_a_bad_plan_file_is_an_option_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("not json")
    with pytest.raises(OptionError, match=rf"--plan {path}: not JSON"):
        optimize(net(), plan=path)
    made = optimize(net(), check_numerics=False)[1].results["plan"]
    replace(made, layers=(LayerPlan("zz", "conv2d", "", "direct", "x"),)).save(path)
    with pytest.raises(OptionError, match=r"no conv layer named 'zz'"):
        optimize(net(), plan=path)
    replace(made, layers=(LayerPlan("c", "conv2d", "", "winograd_2x2", "x"),)).save(path)
    with pytest.raises(OptionError, match=r"'winograd_2x2' does not apply to conv layer 'c'.*direct, im2col"):
        optimize(net(), plan=path)


def test_o3_measures_every_candidate_checks_its_error_and_replays_from_the_cache(
        plan_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = net()
    g, ctx, _ = optimize(before, opt_level=3, check_numerics=False)
    plan = ctx.results["plan"]
    assert plan.mode == "measure" and [f.name for f in cache_files(plan_cache_dir)] == \
        [f"numpy-cpu-float32-measure-{COST_MODEL_VERSION}-{blas_threads()}.json"]
    for lp in plan.layers:
        assert lp.source == "measured" and set(lp.times) == set(lp.errors)
        assert set(lp.times) == set(conv_algo.candidates(g.node(lp.layer), numpy_conv_algos()))
        assert all(t > 0 for t in lp.times.values())
        assert all(e <= budget("float32", a) for a, e in lp.errors.items())  # all within budget here
        assert lp.algo == min(lp.times, key=lp.times.get) == g.node(lp.layer).attrs["algo"]
    assert_same_outputs(before.graph, g, "float32")

    def no_measuring(*args: object) -> None:
        raise AssertionError("measured again although the plan is cached")

    monkeypatch.setattr(conv_algo, "measure", no_measuring)
    _, again, _ = optimize(net(), opt_level=3, check_numerics=False)
    assert again.results["plan"] == plan
