"""Measuring conv algorithms (-O3): one conv -> a one-layer graph, compiled and raced per algorithm.

    times, errors, failures = measure(node, graph, ctx, ("direct", "im2col", "winograd_2x2"))

Each candidate is compiled with the target backend (`ctx.backend.compile`) and run once to warm up;
its output is compared with the NumPy reference in float64, so an algorithm that is fast but outside
its numerical budget is never chosen. Then the candidates race in rounds, interleaved (one run of each
per round, in turn), so load from other processes falls on all of them alike. After `min_rounds` the
race stops as soon as the leader's samples are separated from every other candidate's (the leader's
upper quartile below their lower quartile), or when the time budget or `max_rounds` is spent; a
candidate whose fastest run is slower than twice the leader's median is dropped early. The median of
each candidate's samples is its time.

Pass options (`options={"choose_conv_algo": {...}}`): min_rounds (3), max_rounds (15), budget_s
(seconds per layer, 2.0). Each measured layer is reported to convc.progress (choose_conv_algo).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from convc.errors import ConvcError
from convc.ir import Graph, Node
from convc.numerics import rel_err
from convc.pass_manager import PassContext
from convc.registry import get_backend
from convc.types import TensorType

from convc.passes.winograd_weights import winograd_weights

Clock = Callable[[], float]


@dataclass(frozen=True)
class RaceSettings:
    min_rounds: int = 3
    max_rounds: int = 15
    budget_s: float = 2.0
    drop_factor: float = 2.0  # a candidate whose best run is this much slower than the leader's median

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RaceSettings:
        return cls(int(options.get("min_rounds", cls.min_rounds)),
                   int(options.get("max_rounds", options.get("repeats", cls.max_rounds))),
                   float(options.get("budget_s", cls.budget_s)))


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


def as_compiled(node: Node, g: Graph, algo: str, ctx: PassContext) -> Graph:
    """The one-layer graph as the full pipeline would hand it to the backend: with its Winograd filters
    transformed at compile time where the winograd_weights pass runs for this backend."""
    sub = one_layer_graph(node, g, algo)
    targets = winograd_weights.__convc_pass__.backends  # type: ignore[attr-defined]
    if targets is None or ctx.backend_name in targets:
        winograd_weights(sub, PassContext(backend=ctx.backend, dtype=ctx.dtype))
    return sub


def random_inputs(sub: Graph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n.type.shape) for n in sub.inputs]


def quartiles(samples: list[float]) -> tuple[float, float]:
    """(lower, upper) quartile; with fewer than 4 samples, (min, max)."""
    if len(samples) < 4:
        return min(samples), max(samples)
    q = statistics.quantiles(samples, n=4)
    return q[0], q[2]


def separated(samples: dict[str, list[float]]) -> bool:
    """Whether the candidate with the lowest median is clearly ahead of every other one."""
    ranked = sorted(samples, key=lambda a: statistics.median(samples[a]))
    leader_high = quartiles(samples[ranked[0]])[1]
    return all(quartiles(samples[a])[0] > leader_high for a in ranked[1:])


def race(runs: dict[str, Callable[[], object]], settings: RaceSettings,
         clock: Clock = time.perf_counter) -> dict[str, list[float]]:
    """Seconds of each run per candidate, rounds interleaved, until separated or out of budget/rounds."""
    samples: dict[str, list[float]] = {a: [] for a in runs}
    active = list(runs)
    started = clock()
    for round_index in range(max(settings.max_rounds, settings.min_rounds, 1)):
        for algo in active:
            t0 = clock()
            runs[algo]()
            samples[algo].append(clock() - t0)
        if round_index + 1 < settings.min_rounds or len(active) == 1:
            continue
        leader_median = min(statistics.median(samples[a]) for a in active)
        active = [a for a in active if min(samples[a]) <= settings.drop_factor * leader_median]
        if separated({a: samples[a] for a in active}) or clock() - started >= settings.budget_s:
            break
    return samples


def measure(node: Node, g: Graph, ctx: PassContext, candidates: tuple[str, ...],
            clock: Clock = time.perf_counter) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """(median seconds, relative error vs float64 direct) per candidate, and why any candidate failed."""
    options = ctx.options.get("choose_conv_algo", {})
    settings = RaceSettings.from_options(options)
    inputs = random_inputs(one_layer_graph(node, g, None), ctx.seed)
    exact = get_backend("numpy").compile(one_layer_graph(node, g, "direct"), dtype="float64")
    reference = exact.run(*inputs)[0]
    errors: dict[str, float] = {}
    failures: dict[str, str] = {}
    runs: dict[str, Callable[[], object]] = {}
    for algo in candidates:
        try:
            model = ctx.backend.compile(as_compiled(node, g, algo, ctx), dtype=ctx.dtype)
            out = model.run(*inputs)[0]  # the warm-up run; `run` returns NumPy arrays (waits for a GPU)
        except ConvcError as e:  # the backend cannot run it after all: not a candidate
            failures[algo] = str(e)
            continue
        errors[algo] = rel_err(out, reference)
        runs[algo] = lambda model=model: model.run(*inputs)
    samples = race(runs, settings, clock) if runs else {}
    times = {a: statistics.median(s) for a, s in samples.items()}
    return times, errors, failures
