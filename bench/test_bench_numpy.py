"""The NumPy reference backend against torch CPU eager on ResNet-50, batch 1, 224x224, float32.

    pytest bench/test_bench_numpy.py -s          # prints both times and the ratio

The bar: the NumPy backend takes at most 2x torch eager's time. Both run the same convc graph
(`convc.compile` with the default pipeline), torch through the torch backend's torch.nn.functional
lowering, on the same threads; rounds alternate between the two so that load from other processes
falls on both alike. The ratio compares medians.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import convc
import convc.models
from convc.numerics import budget, rel_err

ROUNDS = 7
WARMUP_ROUNDS = 1
MAX_RATIO = 2.0  # NumPy time / torch eager time


@pytest.fixture(scope="module")
def resnet50() -> convc.Network:
    return convc.models.get("resnet50")


@pytest.fixture(scope="module")
def models(resnet50: convc.Network) -> dict[str, Callable[[], Any]]:
    torch = pytest.importorskip("torch")
    compiled = {"numpy": convc.compile(resnet50, backend="numpy", dtype="float32"),
                "torch": convc.compile(resnet50, backend="torch", dtype="float32", device="cpu")}
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    x_torch = torch.from_numpy(x)
    return {"numpy": lambda: compiled["numpy"](x), "torch": lambda: compiled["torch"](x_torch)}


def test_both_compute_the_same_logits(models: dict[str, Callable[[], Any]]) -> None:
    numpy_out, torch_out = models["numpy"](), models["torch"]()
    assert rel_err(numpy_out, torch_out.numpy()) <= budget("float32", whole_model=True)


def alternate(models: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Seconds per call for each model, rounds interleaved: numpy, torch, numpy, torch, ..."""
    for _ in range(WARMUP_ROUNDS):
        for run in models.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, run in models.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_resnet50_batch1(benchmark: Any, models: dict[str, Callable[[], Any]], backend: str) -> None:
    """pytest-benchmark's own record of each backend (min, median, ... in its table)."""
    benchmark.group = "resnet50 batch 1 224x224 float32 (CPU)"
    benchmark.pedantic(models[backend], rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS)


def test_numpy_within_2x_of_torch_eager(models: dict[str, Callable[[], Any]]) -> None:
    times = alternate(models)
    numpy_s, torch_s = statistics.median(times["numpy"]), statistics.median(times["torch"])
    ratio = numpy_s / torch_s
    print(f"\nResNet-50 batch 1 224x224 float32, median of {ROUNDS} alternating rounds: "
          f"numpy {numpy_s * 1e3:.1f} ms, torch eager {torch_s * 1e3:.1f} ms, ratio {ratio:.2f} "
          f"(min: numpy {min(times['numpy']) * 1e3:.1f} ms, torch {min(times['torch']) * 1e3:.1f} ms)")
    assert ratio <= MAX_RATIO, f"NumPy backend takes {ratio:.2f}x torch eager's time (bar: {MAX_RATIO}x)"
