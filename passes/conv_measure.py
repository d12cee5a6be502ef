"""Measuring conv algorithms (-O3): one conv -> a one-layer graph, compiled and timed per algorithm.

    times, errors, failures = measure(node, graph, ctx, ("direct", "im2col", "winograd_2x2"))

Each candidate is compiled with the target backend (`ctx.backend.compile`), run once to warm up, then
timed `repeats` times (the median counts). Its output is compared with the NumPy reference in float64,
so an algorithm that is fast but outside its numerical budget is never chosen.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from convc.errors import ConvcError
from convc.ir import Graph, Node
from convc.numerics import rel_err
from convc.pass_manager import PassContext
from convc.registry import get_backend
from convc.types import TensorType

DEFAULT_REPEATS = 5


def one_layer_graph(node: Node, g: Graph, algo: str | None) -> Graph:
    """`node` alone: its activation operands become graph inputs, its parameters are shared."""
    sub = Graph(f"{g.name}.{node.name}")
    acts = g.activation_inputs(node)
    names = []
    for i, a in enumerate(acts):
        t = g.node(a).type
        name = "x" if i == 0 else f"residual{i}"
        sub.add(Node(name, "input", (), {"shape": t.shape, "dtype": t.dtype}, TensorType(t.shape, t.dtype)))
        names.append(name)
    params = node.inputs[len(acts):]
    for p in params:
        sub.add(g.node(p))
        sub.params[p] = g.params[p]
    sub.add(node.replace(inputs=tuple(names) + params, attrs={**node.attrs, "algo": algo}))
    sub.outputs = [node.name]
    return sub


def random_inputs(sub: Graph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n.type.shape) for n in sub.inputs]


def median_seconds(run: object, inputs: list[np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """Warm-up run (its output is returned), then the median wall time of `repeats` runs. `run()`
    returns NumPy arrays, which waits for a GPU to finish."""
    out = run(*inputs)[0]  # type: ignore[operator]
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(*inputs)  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), np.asarray(out)


def measure(node: Node, g: Graph, ctx: PassContext, candidates: tuple[str, ...]
            ) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """(median seconds, relative error vs float64 direct) per candidate, and why any candidate failed."""
    repeats = int(ctx.options.get("choose_conv_algo", {}).get("repeats", DEFAULT_REPEATS))
    inputs = random_inputs(one_layer_graph(node, g, None), ctx.seed)
    exact = get_backend("numpy").compile(one_layer_graph(node, g, "direct"), dtype="float64")
    reference = exact.run(*inputs)[0]
    times: dict[str, float] = {}
    errors: dict[str, float] = {}
    failures: dict[str, str] = {}
    for algo in candidates:
        try:
            model = ctx.backend.compile(one_layer_graph(node, g, algo), dtype=ctx.dtype)
            seconds, out = median_seconds(model.run, inputs, repeats)
        except ConvcError as e:  # the backend cannot run it after all: not a candidate
            failures[algo] = str(e)
            continue
        times[algo] = seconds
        errors[algo] = rel_err(out, reference)
    return times, errors, failures
