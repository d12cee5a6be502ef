"""Every node of a model on the NumPy backend (-O2) against the same operation in torch eager, side by
side: which layers lose, and by how much.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/profile_vs_torch.py efficientnet_b0 [--rounds 15]

Each node runs as the interpreter runs it (the lowered step, on the operands a real forward gives it),
and as torch would run it on the same arrays: F.conv2d with the folded weights and bias, then the fused
epilogue's activation and residual add as separate torch calls; mean over the spatial axes for global
pooling; `a * b`; F.linear. Node by node, rounds alternate ours / torch; medians count. torch eager's real
forward runs batch norm as a separate op too, so the torch column is a lower bound of its time; a conv
with a fused squeeze-excitation scale (attrs["input_scale"]) is timed in torch as the multiply, then the
conv. Output:
a table by kind (op, kernel size, stride, output map), ours / torch, then the nodes ours loses most.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from profile_numpy import network, node_kind  # convc's models, else the torchvision zoo (same folder)

import convc
from convc.benchmark import set_cpu_threads
from convc.ops import epilogue_extra_inputs, input_scale_inputs

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu, "silu": F.silu, "sigmoid": torch.sigmoid, "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid, "gelu": F.gelu, "tanh": torch.tanh}


def torch_step(node: Any, args: list[np.ndarray]) -> Callable[[], Any] | None:
    """A closure running `node`'s operation in torch eager on `args`, or None (shape-only ops)."""
    t = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
    a = node.attrs
    steps = tuple(a.get("epilogue", ()))

    def epilogue(y: torch.Tensor, residuals: list[torch.Tensor]) -> torch.Tensor:
        for step in steps:
            if step[0] == "add":
                y = y + residuals.pop(0)
            elif step[0] == "clip":
                y = torch.clamp(y, step[1], step[2])
            else:
                y = ACTIVATIONS[step[0]](y)
        return y

    if node.op == "conv2d":
        n_res, n_scale = epilogue_extra_inputs(a), input_scale_inputs(a)
        x, residuals, w = t[0], t[1:1 + n_res], t[1 + n_res + n_scale]
        b = t[2 + n_res + n_scale] if a["bias"] else None
        scale = t[1 + n_res] if n_scale else None
        pads = [tuple(p) for p in a["padding"]]
        if all(lo == hi for lo, hi in pads):
            padding: Any = tuple(lo for lo, _ in pads)
        else:
            x = F.pad(x, [v for lo_hi in reversed(pads) for v in lo_hi])
            padding = 0
        return lambda: epilogue(F.conv2d(x if scale is None else x * scale, w, b, a["stride"], padding,
                                         a["dilation"], a["groups"]), list(residuals))
    if node.op == "linear":
        n_res = epilogue_extra_inputs(a)
        x, residuals, w = t[0], t[1:1 + n_res], t[1 + n_res]
        b = t[2 + n_res] if a["bias"] else None
        return lambda: epilogue(F.linear(x, w, b), list(residuals))
    if node.op == "global_avg_pool":
        return lambda: F.adaptive_avg_pool2d(t[0], 1)
    if node.op == "mul":
        return lambda: t[0] * t[1]
    if node.op == "add":
        return lambda: t[0] + t[1]
    return None


def kind(node: Any) -> str:
    """profile_numpy's kind of node, at its output map's size."""
    return f"{node_kind(node)} @{'x'.join(map(str, node.type.shape[2:]))}"


def median_of(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def compare(name: str, rounds: int, size: int) -> None:
    net = network(name, size)
    model = convc.compile(net, backend="numpy", dtype="float32", check_numerics=False)
    env = dict(model._params)
    env[model.graph.inputs[0].name] = np.random.default_rng(0).standard_normal(
        net.graph.inputs[0].type.shape).astype(np.float32)
    rows = []
    for node, step in zip(model._order, model._steps):
        args = [env[i] for i in node.inputs]
        env[node.name] = step(args)
        theirs = torch_step(node, args)
        if theirs is None:
            continue
        ours_t, torch_t = [], []
        ours = partial(step, args)
        for _ in range(rounds):  # alternate, a few calls each, so both see the same machine
            ours_t.append(median_of(ours, 3))
            torch_t.append(median_of(theirs, 3))
        rows.append((node, statistics.median(ours_t) * 1e3, statistics.median(torch_t) * 1e3))
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for node, ours, theirs in rows:
        entry = by_kind[kind(node)]
        entry[0] += 1
        entry[1] += ours
        entry[2] += theirs
    total_ours, total_torch = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"\n### {name}: ours {total_ours:.2f} ms, torch ops {total_torch:.2f} ms "
          f"(sum of node medians, {rounds} rounds)\n")
    print("| kind | nodes | ours ms | torch ms | ours - torch | ours / torch |\n"
          "|---|---:|---:|---:|---:|---:|")
    for k, (count, ours, theirs) in sorted(by_kind.items(), key=lambda kv: kv[1][2] - kv[1][1]):
        print(f"| {k} | {count} | {ours:.3f} | {theirs:.3f} | {ours - theirs:+.3f} | {ours / theirs:.2f} |")
    print("\nnodes losing most:")
    for node, ours, theirs in sorted(rows, key=lambda r: r[2] - r[1])[:12]:
        print(f"  {node.name:40s} {kind(node):32s} {ours:.3f} vs {theirs:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", type=int, default=224, help="input size of torchvision zoo models")
    args = parser.parse_args()
    set_cpu_threads(1)
    torch.set_num_threads(1)
    for name in args.models:
        compare(name, args.rounds, args.size)


if __name__ == "__main__":
    main()
