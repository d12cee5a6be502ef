"""bench/bench_cpu_baselines.py: the round-by-round ratio's quartiles worked out by hand, the per-forward
counters (page faults, CPU share) against runs whose faults and CPU use are known, and one whole run of
the script on LeNet-5 whose table row is read back."""
from __future__ import annotations

import importlib.util
import math
import mmap
import sys
import time
from pathlib import Path

import pytest

from convc.benchmark import cpu_threads, set_cpu_threads

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_cpu_baselines.py"
_spec = importlib.util.spec_from_file_location("bench_cpu_baselines", SCRIPT)
assert _spec is not None and _spec.loader is not None
baselines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baselines)


def test_round_ratios_are_the_quartiles_of_each_rounds_ratio() -> None:
    # ratios 1, 1.5, 2, 3: quartiles at positions 0.75, 1.5 and 2.25 of the sorted four
    ratios = baselines.round_ratios([2.0, 3.0, 4.0, 9.0], [2.0, 2.0, 2.0, 3.0])
    assert ratios == pytest.approx((1.375, 1.75, 2.25))
    # a round whose both runs slowed down alike keeps its ratio: 10/5 and 20/10 are both 2
    assert baselines.round_ratios([10.0, 20.0, 12.0], [5.0, 10.0, 4.0]) == pytest.approx((2.0, 2.0, 2.5))
    assert baselines.round_ratios([3.0], [2.0]) == (1.5, 1.5, 1.5)


@pytest.mark.parametrize("numerators, denominators", [([], []), ([1.0, 2.0], [1.0])])
def test_round_ratios_refuse_unpaired_samples(numerators: list[float], denominators: list[float]) -> None:
    with pytest.raises(ValueError, match="two samples of one nonzero length"):
        baselines.round_ratios(numerators, denominators)


def test_forward_counters_count_the_faults_of_fresh_memory_and_no_cpu_while_asleep() -> None:
    def fresh_16_mib() -> None:  # a new private anonymous mapping, written once per 4 KiB page, then
        # unmapped (not malloc: whether it maps afresh depends on its state; not mmap's default shared
        # mapping, which is backed by shared memory)
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        with mmap.mmap(-1, 16 << 20, flags=flags) as pages:
            for offset in range(0, len(pages), 4096):
                pages[offset] = 1

    faults, _ = baselines.forward_counters(fresh_16_mib, 3)
    assert faults >= 8  # at least one fault per 2 MiB (huge pages), 4096 with 4 KiB pages
    faults, share = baselines.forward_counters(lambda: time.sleep(0.02), 3)
    assert faults < 8  # other threads of a test worker may touch a page meanwhile; never 16 MiB's worth
    assert share < 0.5  # sleeping takes wall time, not CPU time


def test_the_script_prints_a_row_per_model_and_the_counters(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    threads = cpu_threads()
    monkeypatch.setattr(sys, "argv", ["bench_cpu_baselines.py", "--models", "lenet5", "--rounds", "3"])
    try:
        baselines.main()
    finally:
        set_cpu_threads(threads)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| lenet5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    numpy_ms, torch_ms, ort_ms, by_ort, by_torch = (float(c) for c in cells[1:6])
    for ratio, other_ms in ((by_ort, ort_ms), (by_torch, torch_ms)):  # times printed to 0.1 ms, ratios 0.01
        upper = (numpy_ms + 0.05) / (other_ms - 0.05) if other_ms > 0.05 else math.inf
        assert (numpy_ms - 0.05) / (other_ms + 0.05) - 0.005 <= ratio <= upper + 0.005
    mid, quartiles = cells[6].split(" ")
    q1, q3 = (float(q) for q in quartiles.strip("()").split("-"))
    assert q1 <= float(mid) <= q3
    assert float(cells[7]) < 1e-4  # every backend's float32 output against the float64 reference
    assert "- lenet5: numpy -O2 " in out and "onnxruntime" in out.split("- lenet5:")[1]
