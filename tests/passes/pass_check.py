"""The shared check every pass test goes through: structure (op counts) and numeric equivalence.

    g, ctx = check_rewrite(net.graph, ["fold_bn"], expect={"batch_norm": 0, "conv2d": 1})

runs the passes (through convc.compiler.optimize, so ordering and verification are the real ones),
asserts the op counts, then runs the graph before and after on the NumPy reference backend on the
same seeded inputs and asserts they agree: to relative 1e-10 in float64, 1e-4 in float32.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convc.compiler import optimize
from convc.ir import Graph
from convc.numerics import rel_err
from convc.pass_manager import PassContext
from convc.registry import get_backend
from convc.types import TensorType

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def with_float64_params(graph: Graph) -> Graph:
    """A float64 copy (parameters, inputs and every node's type), so a float64 run is float64 end to
    end: a fold computed in float64 is then stored without float32 rounding."""
    g = graph.copy()
    for node in g.nodes():
        attrs = {**node.attrs, "dtype": "float64"} if node.op == "input" else node.attrs
        g.replace_node(node.replace(attrs=attrs, type=TensorType(node.type.shape, "float64")))
        if node.op == "param":
            g.params[node.name] = np.asarray(g.params[node.name], np.float64)
    g.verify()
    return g


def op_counts(graph: Graph) -> Counter[str]:
    return Counter(n.op for n in graph.nodes() if n.op not in ("param", "input"))


def seeded_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n.type.shape) for n in graph.inputs]


def run(graph: Graph, inputs: Sequence[np.ndarray], dtype: str = "float64") -> list[np.ndarray]:
    return get_backend("numpy").compile(graph, dtype=dtype).run(*inputs)


def assert_same_outputs(before: Graph, after: Graph, dtype: str = "float64", seed: int = 0,
                        tolerance: float | None = None) -> float:
    """Both graphs on the same inputs; the float64 run of `before` is the reference."""
    inputs = seeded_inputs(before, seed)
    expected = run(before, inputs, "float64")
    actual = run(after, inputs, dtype)
    assert len(actual) == len(expected)
    tol = TOLERANCE[dtype] if tolerance is None else tolerance
    worst = 0.0
    for out, a, e in zip(after.outputs, actual, expected):
        assert a.shape == e.shape, f"output {out}: shape {a.shape} != {e.shape}"
        err = rel_err(a, e)
        assert err <= tol, f"output {out}: relative error {err:.3g} > {tol:.0e} ({dtype})"
        worst = max(worst, err)
    return worst


def check_rewrite(graph: Graph, passes: Sequence[str] | None, expect: Mapping[str, int],
                  dtype: str = "float64", opt_level: int = 2, backend: str = "numpy",
                  **options: Any) -> tuple[Graph, PassContext]:
    """Runs `passes` (None: the default pipeline) on `graph` (float64 params for a float64 check),
    asserts the op counts in `expect`, and the outputs before and after agree."""
    before = with_float64_params(graph) if dtype == "float64" else graph.copy()
    after, ctx, _ = optimize(before, backend=backend, dtype=dtype, opt_level=opt_level, passes=passes,
                             check_numerics=False, **options)
    counts = op_counts(after)
    wrong = {op: (counts.get(op, 0), n) for op, n in expect.items() if counts.get(op, 0) != n}
    assert not wrong, f"op counts (got, expected): {wrong}; graph has {dict(counts)}"
    assert_same_outputs(before, after, dtype)
    return after, ctx
