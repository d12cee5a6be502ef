"""Where a model's time goes on the NumPy backend (-O2): every node timed, convolutions split into
padding, GEMM (np.matmul), epilogue and the rest (gathers, transforms, layout copies), summed by kind.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/profile_numpy.py resnet50 googlenet [--rounds 5]
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/profile_numpy.py convnext_tiny --size 224

A name convc.models does not know is built from torchvision (tests/models/torchvision_zoo.py).

The graph runs node by node as the interpreter runs it (same steps, same order, same operands); each
node's time is the median over `--rounds` forwards, after one warm-up. The conv split wraps
`np.pad`, `np.matmul` and the epilogue inside the conv kernels' modules for the run, so its shares are
of the same forwards. Output: one markdown table per model, by kind (op, conv algorithm and kernel
size), with milliseconds and the share of the forward, then the split of conv time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import convc
import convc.models
from convc.backends.numpy_ref import conv_direct, conv_im2col, conv_operands, conv_winograd
from convc.ops import CONV_OPS

CONV_MODULES = (conv_direct, conv_im2col, conv_winograd, conv_operands)


def node_kind(node: Any) -> str:
    if node.op in CONV_OPS:
        k = "x".join(map(str, node.attrs["kernel"]))
        s = max(node.attrs["stride"])
        groups = " grouped" if node.attrs["groups"] > 1 else ""
        return f"conv {k}{'/s' + str(s) if s > 1 else ''}{groups} {node.attrs.get('algo')}"
    return node.op


@contextmanager
def conv_phase_timers(totals: dict[str, float]) -> Iterator[None]:
    """Times np.pad, np.matmul and apply_epilogue as the conv kernels call them, into `totals`."""
    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                totals[name] += time.perf_counter() - t
        return wrapper

    fake_np = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    fake_np.pad = timed("pad", np.pad)
    fake_np.matmul = timed("gemm", np.matmul)
    saved = {m: m.np for m in CONV_MODULES}
    saved_epilogue = conv_operands.apply_epilogue
    try:
        for m in CONV_MODULES:
            m.np = fake_np
        conv_operands.apply_epilogue = timed("epilogue", saved_epilogue)
        yield
    finally:
        for m, orig in saved.items():
            m.np = orig
        conv_operands.apply_epilogue = saved_epilogue


def network(name: str, size: int) -> convc.Network:
    """convc's own model `name`, else the torchvision zoo model of that name at `size` x `size`."""
    if name in convc.models.names():
        return convc.models.get(name)
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / d) for d in ("models", "")]
    import torchvision_zoo

    model, x = torchvision_zoo.build(name, size=size)
    return convc.from_torch(model, x)


def profile(name: str, rounds: int, size: int) -> None:
    net = network(name, size)
    model = convc.compile(net, backend="numpy", dtype="float32", check_numerics=False)
    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape).astype(np.float32)
    order, steps = model._order, model._steps
    per_node: dict[str, list[float]] = defaultdict(list)
    phases: dict[str, float] = defaultdict(float)
    totals = []
    for r in range(rounds + 1):
        env = dict(model._params)
        env[model.graph.inputs[0].name] = x
        t_all = time.perf_counter()
        with conv_phase_timers(phases) if r else contextmanager(lambda: iter([None]))():
            for node, step in zip(order, steps):
                t = time.perf_counter()
                env[node.name] = step([env[i] for i in node.inputs])
                if r:
                    per_node[node.name].append(time.perf_counter() - t)
        if r:
            totals.append(time.perf_counter() - t_all)
    total = statistics.mean(totals) * 1e3
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    conv_ms = 0.0
    for node in order:
        ms = statistics.mean(per_node[node.name]) * 1e3
        by_kind[node_kind(node)][0] += ms
        by_kind[node_kind(node)][1] += 1
        conv_ms += ms if node.op in CONV_OPS else 0.0
    print(f"\n### {name}: {total:.1f} ms per forward (mean of {rounds}), {len(order)} nodes\n")
    print("| kind | nodes | ms | share |\n|---|---:|---:|---:|")
    for kind, (ms, count) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        print(f"| {kind} | {count} | {ms:.2f} | {ms / total:.1%} |")
    phase_ms = {k: v / rounds * 1e3 for k, v in phases.items()}
    rest = conv_ms - sum(phase_ms.values())
    print(f"\nconv total {conv_ms:.1f} ms: " + ", ".join(
        f"{k} {v:.1f} ms ({v / total:.1%})" for k, v in {**phase_ms, "gather/transform/other": rest}.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=224, help="input size of torchvision zoo models")
    args = parser.parse_args()
    for name in args.models:
        profile(name, args.rounds, args.size)


if __name__ == "__main__":
    main()
