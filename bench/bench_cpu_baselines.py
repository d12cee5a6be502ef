"""The NumPy backend (-O2) against the CPU baselines a user would pick instead: torch eager and
onnxruntime, on whole zoo models at batch 1, float32, side by side in one process.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/bench_cpu_baselines.py \\
        [--models resnet50,vgg16,googlenet,resnet18] [--rounds 7] [--threads 1]

Rounds alternate between the backends (numpy, torch, onnxruntime, numpy, ...) after one warm-up round,
so load from other processes falls on all of them alike; medians count. The thread count is set for
torch and onnxruntime and must be set for NumPy's BLAS through its environment variable (the script
prints what each uses). Output: a markdown table with each backend's median, the NumPy/onnxruntime and
NumPy/torch ratios, and each backend's error against the NumPy float64 reference.
"""
from __future__ import annotations

import argparse
import datetime
import os
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
          " max rel. err vs float64 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        net = convc.models.get(name)
        runs = compiled_runs(net, args.threads)
        x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape)
        ref = convc.compile(net, opt_level=0, dtype="float64").run(x)[0]
        err = max(rel_err(run(), ref) for run in runs.values())
        t = alternate(runs, args.rounds)
        n, tt, o = t["numpy -O2"], t["torch eager"], t["onnxruntime"]
        print(f"| {name} | {n * 1e3:.1f} | {tt * 1e3:.1f} | {o * 1e3:.1f} | {n / o:.2f} | {n / tt:.2f} | "
              f"{err:.1e} |", flush=True)
    print(f"\nload average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
