"""Every conv algorithm of the NumPy backend, side by side, on each 3x3 layer of ResNet-50 and VGG-16
(batch 1, 224x224), against the -O2 cost model's pick.

    OPENBLAS_NUM_THREADS=1 python bench/bench_conv_algos.py [--rounds 7] [--models resnet50,vgg16]

Each distinct layer (one per shape and epilogue) runs as a one-layer graph (the conv with its fused
epilogue, as -O2 compiles it); rounds alternate between the algorithms so load from other processes
falls on all of them alike; medians count. The report gives, per layer, each algorithm's median, the
model's prediction, the -O2 pick and how far the pick is from the measured best (the target: within
10%). The BLAS thread count and the load average are printed with the results.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import convc.models
from convc.compiler import optimize
from convc.device_profiles import blas_threads, cpu_name
from convc.ir import Graph, Node
from convc.passes.conv_algo import candidates
from convc.pass_manager import PassContext
from convc.passes.conv_measure import as_compiled, one_layer_graph, random_inputs
from convc.passes.plan import signature
from convc.registry import get_backend


def three_by_three_layers(model: str) -> list[tuple[str, Node, Graph, str]]:
    """(model.layer, node, -O2 graph, -O2 pick) for each distinct 3x3 conv of `model`."""
    # without winograd_weights: each candidate gets its own transform below
    g, ctx, _ = optimize(convc.models.get(model), backend="numpy", dtype="float32", opt_level=2,
                         disable=("winograd_weights",), check_numerics=False)
    plan = ctx.results["plan"]
    seen: set[str] = set()
    layers = []
    for node in g.nodes("conv2d"):
        sig = signature(node, g)
        if tuple(node.attrs["kernel"]) != (3, 3) or sig in seen:
            continue
        seen.add(sig)
        layers.append((f"{model}.{node.name}", node, g, plan.layer(node.name)))
    return layers


def time_side_by_side(runs: dict[str, object], inputs: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median seconds per algorithm, rounds interleaved (a warm-up round first)."""
    for run in runs.values():
        run(*inputs)  # type: ignore[operator]
    samples: dict[str, list[float]] = {a: [] for a in runs}
    for _ in range(rounds):
        for algo, run in runs.items():
            t0 = time.perf_counter()
            run(*inputs)  # type: ignore[operator]
            samples[algo].append(time.perf_counter() - t0)
    return {a: statistics.median(s) for a, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", default="resnet50,vgg16")
    args = parser.parse_args()
    numpy_backend = get_backend("numpy")
    print(f"# {cpu_name()}, {blas_threads()} BLAS thread(s), float32, batch 1, {args.rounds} alternating "
          f"rounds, medians in ms; load average before: {os.getloadavg()[0]:.1f}")
    print("| layer | " + " | ".join(("direct", "im2col", "F(2,3)", "F(4,3)")) + " | -O2 pick | pick/best |")
    print("|---|---:|---:|---:|---:|---|---:|")
    worst = 1.0
    for model in args.models.split(","):
        for name, node, g, lp in three_by_three_layers(model):
            algos = candidates(node, numpy_backend.capabilities.conv_algos)
            inputs = [x.astype(np.float32) for x in random_inputs(one_layer_graph(node, g, None), 0)]
            ctx = PassContext(backend=numpy_backend, dtype="float32")
            # as -O2 compiles it: Winograd filters transformed at compile time
            runs = {a: numpy_backend.compile(as_compiled(node, g, a, ctx), dtype="float32") for a in algos}
            medians = time_side_by_side(runs, inputs, args.rounds)
            best = min(medians.values())
            ratio = medians[lp.algo] / best
            worst = max(worst, ratio)
            cells = []
            for a in ("direct", "im2col", "winograd_2x2", "winograd_4x4"):
                if a not in medians:
                    cells.append("")
                    continue
                text = f"{medians[a] * 1e3:.2f} ({lp.times[a] * 1e3:.2f})"
                cells.append(f"**{text}**" if medians[a] == best else text)
            shape = "x".join(map(str, g.node(g.activation_inputs(node)[0]).type.shape[1:]))
            print(f"| {name} {shape}->{node.attrs['out_channels']} | " + " | ".join(cells)
                  + f" | {lp.algo} | {ratio:.2f} |", flush=True)
    print(f"\nworst pick/best: {worst:.2f}; load average after: {os.getloadavg()[0]:.1f}; "
          "cells: measured (modelled)")


if __name__ == "__main__":
    main()
