"""The NumPy backend (-O2) against the CPU baselines a user would pick instead: torch eager and
onnxruntime, on whole zoo models at batch 1, float32, side by side in one process.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/bench_cpu_baselines.py \\
        [--models resnet50,vgg16,googlenet,resnet18] [--rounds 7] [--threads 1]

Rounds alternate between the backends (numpy, torch, onnxruntime, numpy, ...) after one warm-up round,
so load from other processes falls on all of them alike; medians count. The thread count is set for
torch and onnxruntime and must be set for NumPy's BLAS through its environment variable (the script
prints what each uses). Output: a markdown table with each backend's median, the NumPy/onnxruntime and
NumPy/torch ratios, the quartiles of the NumPy/onnxruntime ratio taken round by round (how far one run's
ratio can be trusted: the two forwards of a round share the machine's load), and each backend's error
against the NumPy float64 reference; then, per backend, the minor page faults and the CPU time of the
calling thread per forward (bench/NOTES.md, r50b: why the ratio moves between runs).
"""
from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import convc
import convc.models
from convc.benchmark import set_cpu_threads
from convc.device_profiles import blas_threads, cpu_name
from convc.numerics import rel_err


def compiled_runs(net: convc.Network, threads: int) -> dict[str, Callable[[], np.ndarray]]:
    import torch

    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape).astype(np.float32)
    numpy_model = convc.compile(net, backend="numpy", dtype="float32")
    torch_model = convc.compile(net, backend="torch", dtype="float32", device="cpu")
    ort_model = convc.compile(net, backend="onnxruntime", dtype="float32", threads=threads)
    xt = torch.from_numpy(x)

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return torch_model(xt).numpy()
    return {"numpy -O2": lambda: numpy_model(x), "torch eager": run_torch,
            "onnxruntime": lambda: ort_model(x)}


def alternate_samples(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each run in `rounds` rounds that take the runs in turn (no warm-up)."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - t0)
    return samples


def alternate(runs: dict[str, Callable[[], np.ndarray]], rounds: int) -> dict[str, float]:
    for run in runs.values():
        run()
    return {name: statistics.median(s) for name, s in alternate_samples(runs, rounds).items()}


def round_ratios(numerators: list[float], denominators: list[float]) -> tuple[float, float, float]:
    """The first quartile, median and third quartile of numerators[i] / denominators[i]: the ratio of the
    two runs of each alternating round (same length lists).

        round_ratios([2.0, 3.0, 4.0, 9.0], [2.0, 2.0, 2.0, 3.0])   # (1.375, 1.75, 2.25): of 1, 1.5, 2, 3
    """
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(f"round_ratios needs two samples of one nonzero length; got {len(numerators)} "
                         f"and {len(denominators)}")
    ratios = [a / b for a, b in zip(numerators, denominators)]
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, median, q3


def forward_counters(run: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """The median minor page faults of the process per call of `run`, and the calling thread's CPU time
    over the wall time of those calls (below 1 when the thread waits or is descheduled)."""
    faults, cpu, wall = [], 0.0, 0.0
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0, w0 = time.thread_time(), time.perf_counter()
        run()
        cpu, wall = cpu + time.thread_time() - c0, wall + time.perf_counter() - w0
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(faults), cpu / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg16,googlenet,resnet18")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_cpu_threads(args.threads)
    print(f"# {datetime.date.today()}, {cpu_name()}, torch/onnxruntime threads {args.threads}, NumPy BLAS "
          f"threads {blas_threads()}, float32, batch 1, {args.rounds} alternating rounds, medians; load "
          f"average before {os.getloadavg()[0]:.1f}")
    print("| model | numpy -O2 (ms) | torch eager (ms) | onnxruntime (ms) | numpy / ort | numpy / torch |"
          " numpy / ort by round (quartiles) | max rel. err vs float64 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    counters = []
    for name in args.models.split(","):
        net = convc.models.get(name)
        runs = compiled_runs(net, args.threads)
        x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape)
        ref = convc.compile(net, opt_level=0, dtype="float64").run(x)[0]
        err = max(rel_err(run(), ref) for run in runs.values())  # also the warm-up round
        samples = alternate_samples(runs, args.rounds)
        n, tt, o = (statistics.median(samples[k]) for k in ("numpy -O2", "torch eager", "onnxruntime"))
        q1, mid, q3 = round_ratios(samples["numpy -O2"], samples["onnxruntime"])
        print(f"| {name} | {n * 1e3:.1f} | {tt * 1e3:.1f} | {o * 1e3:.1f} | {n / o:.2f} | {n / tt:.2f} | "
              f"{mid:.2f} ({q1:.2f}-{q3:.2f}) | {err:.1e} |", flush=True)
        counters.append((name, {k: forward_counters(run, 3) for k, run in runs.items()}))
    print(f"\nload average after {os.getloadavg()[0]:.1f}\n\nper forward (median of 3): minor page faults, "
          "CPU time of the calling thread / wall time")
    for name, per_backend in counters:
        print(f"- {name}: " + "; ".join(f"{k} {faults:.0f} faults, CPU {share:.0%}"
                                        for k, (faults, share) in per_backend.items()))


if __name__ == "__main__":
    main()
