"""-O3 measuring: candidates raced in interleaved rounds on a fake clock (separation, budget, early
drops, load spikes), progress per layer, the plan cache saved layer by layer and keyed by threads."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from convc.compiler import optimize
from convc.device_profiles import blas_threads
from convc.dsl import Network
from convc.errors import OptionError
from convc.passes import conv_algo
from convc.pass_manager import PassContext
from convc.passes.conv_measure import RaceSettings, race, separated
from convc.registry import get_backend


class FakeClock:
    """Time moves only when a fake run says so; `spike` adds seconds to every run in rounds [lo, hi)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.order: list[str] = []

    def __call__(self) -> float:
        return self.now

    def runs(self, seconds: dict[str, Callable[[int], float]]) -> dict[str, Callable[[], None]]:
        counts = {a: 0 for a in seconds}

        def make(algo: str) -> Callable[[], None]:
            def run() -> None:
                self.order.append(algo)
                self.now += seconds[algo](counts[algo])
                counts[algo] += 1
            return run
        return {a: make(a) for a in seconds}


def test_rounds_interleave_and_stop_once_the_leader_is_separated() -> None:
    clock = FakeClock()
    runs = clock.runs({"direct": lambda i: 3e-3, "im2col": lambda i: 1e-3, "winograd": lambda i: 1.5e-3})
    samples = race(runs, RaceSettings(min_rounds=3, max_rounds=15, budget_s=10), clock)
    assert clock.order[:6] == ["direct", "im2col", "winograd"] * 2  # round robin, not back to back
    assert len(samples["im2col"]) == len(samples["winograd"]) == 3  # separated at the first check
    assert len(samples["direct"]) == 3 and samples["im2col"] == pytest.approx([1e-3] * 3)


def test_overlapping_candidates_run_until_the_budget_is_spent() -> None:
    clock = FakeClock()
    runs = clock.runs({"a": lambda i: (1e-3, 3e-3)[i % 2], "b": lambda i: (3e-3, 1e-3)[i % 2]})
    samples = race(runs, RaceSettings(min_rounds=3, max_rounds=100, budget_s=0.02), clock)
    rounds = len(samples["a"])
    assert rounds == len(samples["b"]) and 3 < rounds < 100
    assert clock.now >= 0.02 and clock.now - 0.02 < 2 * 4e-3  # stopped in the round that spent it


def test_max_rounds_bounds_a_race_that_never_separates() -> None:
    clock = FakeClock()
    runs = clock.runs({"a": lambda i: (1e-3, 3e-3)[i % 2], "b": lambda i: (3e-3, 1e-3)[i % 2]})
    samples = race(runs, RaceSettings(min_rounds=3, max_rounds=7, budget_s=1e9), clock)
    assert len(samples["a"]) == len(samples["b"]) == 7


def test_a_hopeless_candidate_is_dropped_early_but_keeps_its_samples() -> None:
    clock = FakeClock()
    runs = clock.runs({"fast": lambda i: (1e-3, 1.2e-3)[i % 2], "close": lambda i: (1.1e-3, 1e-3)[i % 2],
                       "slow": lambda i: 9e-3})
    samples = race(runs, RaceSettings(min_rounds=3, max_rounds=10, budget_s=1e9), clock)
    assert len(samples["slow"]) == 3 and len(samples["fast"]) == 10


def test_a_load_spike_falls_on_every_candidate_so_the_median_still_ranks_right() -> None:
    """Rounds 1-2 run 20 ms slower for everyone: back-to-back timing of b during the spike would pick a;
    interleaved rounds see it in both and the medians stay in the true order."""
    clock = FakeClock()
    spike = lambda i: 20e-3 if i in (1, 2) else 0.0  # noqa: E731
    runs = clock.runs({"a": lambda i: 2e-3 + spike(i), "b": lambda i: 1e-3 + spike(i)})
    samples = race(runs, RaceSettings(min_rounds=5, max_rounds=5, budget_s=1e9), clock)
    medians = {a: sorted(s)[len(s) // 2] for a, s in samples.items()}
    assert medians["b"] < medians["a"]


def test_separation_compares_quartiles() -> None:
    assert separated({"a": [1, 1.1, 1.2, 1.1], "b": [2, 2.1, 2.2, 2.0]})
    assert not separated({"a": [1, 1.1, 3, 1.1], "b": [2, 2.1, 2.2, 1.0]})


# ------------------------------------------------------------------ the pass
def three_layers() -> Network:
    n = Network("m")
    x = n.input((1, 3, 8, 8))
    y = n.conv2d(x, 4, 3, padding=1, name="a")
    y = n.conv2d(y, 4, 3, padding=1, name="b")
    n.output(n.conv2d(y, 5, 3, padding=1, name="c"))  # three signatures: nothing replays another's
    return n


def test_progress_reports_each_measured_layer_and_the_cache_is_keyed_by_threads(plan_cache_dir: Path) -> None:
    messages: list[str] = []
    ctx = PassContext(backend=get_backend("numpy"), opt_level=3,
                      options={"choose_conv_algo": {"progress": messages.append, "max_rounds": 3}})
    conv_algo.choose_conv_algo(three_layers().graph.copy(), ctx)
    # The pass option is shorthand for convc.progress.reporting_lines_to: one line per report.
    assert messages == ["measuring conv algorithms 0/3: a", "measuring conv algorithms 1/3: b",
                        "measuring conv algorithms 2/3: c", "measuring conv algorithms 3/3"]
    files = sorted((plan_cache_dir / "plans").glob("*measure*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["key"]["threads"] == blas_threads()


def test_a_progress_option_that_is_not_callable_is_named() -> None:
    ctx = PassContext(backend=get_backend("numpy"), opt_level=3,
                      options={"choose_conv_algo": {"progress": "stderr"}})
    with pytest.raises(OptionError, match="choose_conv_algo.progress='stderr': expected a callable"):
        conv_algo.choose_conv_algo(three_layers().graph.copy(), ctx)


def test_an_interrupted_o3_keeps_the_layers_it_measured(plan_cache_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = conv_algo.measure
    calls: list[str] = []

    def interrupted(node, g, ctx, cands):  # type: ignore[no-untyped-def]
        calls.append(node.name)
        if node.name == "b":
            raise KeyboardInterrupt
        return real(node, g, ctx, cands)

    monkeypatch.setattr(conv_algo, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        optimize(three_layers(), opt_level=3, check_numerics=False)
    files = sorted((plan_cache_dir / "plans").glob("*measure*.json"))
    entries = json.loads(files[0].read_text())["entries"]
    assert len(entries) == 1  # a's signature
    calls.clear()
    monkeypatch.setattr(conv_algo, "measure", lambda *a: (calls.append(a[0].name), real(*a))[1])
    optimize(three_layers(), opt_level=3, check_numerics=False)
    assert calls == ["b", "c"]  # a replayed from the cache


def test_numpy_candidates_are_timed_with_winograd_filters_transformed_at_compile_time() -> None:
    """As -O2/-O3 compile them (passes/winograd_weights.py); a backend that packs its own gets the
    graph untouched."""
    from convc.passes.conv_measure import as_compiled

    g = three_layers().graph
    node = g.node("b")
    numpy_ctx = PassContext(backend=get_backend("numpy"))
    sub = as_compiled(node, g, "winograd_4x4", numpy_ctx)
    assert sub.node("b").attrs["weight_transformed"] and "b.weight" not in sub.params
    assert "b.weight" in g.params  # the caller's graph is untouched
    assert "weight_transformed" not in as_compiled(node, g, "im2col", numpy_ctx).node("b").attrs
    torch_ctx = PassContext(backend=get_backend("torch"))
    assert "weight_transformed" not in as_compiled(node, g, "winograd_4x4", torch_ctx).node("b").attrs
