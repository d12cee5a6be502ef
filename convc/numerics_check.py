"""`--check-numerics`: after a pass, run the graph on the NumPy backend in float64 on a seeded input and
compare with the graph as it was before the pipeline; name the first node whose value differs.

Values are paired through `Graph.resolve`: when a pass replaces value V by node W (replace_all_uses),
W's output must equal V's original output.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.errors import OptionError, PassError
from convc.ir import Graph
from convc.numerics import budget, rel_err
from convc.registry import get_backend


def seeded_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    """Standard-normal float64 inputs from `seed` (a non-negative int); sizes past the memory limit are
    refused before they are drawn."""
    from convc.limits import check_shape

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed {seed!r} must be a non-negative integer")
    for n in graph.inputs:
        check_shape(n.type.shape, "float64", f"input '{n.name}' {n.type.shape}")
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n.type.shape) for n in graph.inputs]


def trace(graph: Graph, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every node's value, in float64 on the NumPy reference backend."""
    reference = get_backend("numpy")
    # A conv algorithm only another backend has (triton's implicit_gemm) is left to the reference's
    # default: the check is about what the graph computes, not how the target will compute it.
    known = (None, *reference.capabilities.conv_algos)
    foreign = [n for n in graph.nodes() if n.attrs.get("algo") not in known]
    if foreign:
        graph = graph.copy()
        for n in foreign:
            graph.replace_node(n.replace(attrs={**n.attrs, "algo": None}))
    return reference.compile(graph, dtype="float64").trace(*inputs)


class NumericsChecker:
    def __init__(self, original: Graph, ctx: Any) -> None:
        self.original = original.copy()
        self.seed = ctx.seed
        self._reference: dict[str, np.ndarray] | None = None  # traced on the first check only
        self.order = [n.name for n in self.original.nodes()]
        # The run is float64, but a pass may legitimately store what it computes (a folded BN) in the
        # parameters' own dtype: float32 parameters re-round at float32 precision. Compiling in float64,
        # passes keep float64 (numerics.pass_param_dtype), so the float64 budget applies.
        float64 = ctx.dtype == "float64" or all(a.dtype == np.float64 for a in original.params.values())
        self.param_dtype = "float64" if float64 else "float32"
        # float32 parameters: a fold re-rounds weights (~6e-8 each); the single-op float32 budget leaves
        # room for that through deep nets while still catching a pass that perturbs values.
        self.budget = budget(self.param_dtype, whole_model=self.param_dtype == "float64")

    @property
    def reference(self) -> dict[str, np.ndarray]:
        if self._reference is None:
            self.inputs = seeded_inputs(self.original, self.seed)
            self._reference = trace(self.original, self.inputs)
        return self._reference

    def check(self, graph: Graph, p: Any, done: list[str]) -> float:
        reference = self.reference
        values = trace(graph, self.inputs)
        # Outputs by position: a pass that repoints graph.outputs is compared on what it now returns.
        err = max(rel_err(values[now], reference[was]) for now, was in zip(graph.outputs, self.original.outputs))
        if err <= self.budget:
            return err
        node, was, node_err = self.first_difference(graph, values)
        where = f"; first differing node '{node}'" + (f" (was '{was}')" if was != node else "") + \
            f" with error {node_err:.3g}" if node else ""
        raise PassError(f"pass '{p.name}' (package '{p.info.origin}') changed the result: relative error "
                        f"{err:.3g} exceeds the budget {self.budget:.0e} (float64 run, {self.param_dtype} "
                        f"parameters){where}; passes run before it: {', '.join(done) or 'none'}")

    def first_difference(self, graph: Graph, values: dict[str, np.ndarray]) -> tuple[str | None, str, float]:
        latest: dict[str, str] = {}  # current node -> the last original value it now computes
        for name in self.order:
            target = graph.resolve(name)
            if target in values:
                latest[target] = name
        for node in graph.nodes():
            was = latest.get(node.name)
            if was is None or node.op == "param":
                continue
            ref = self.reference[was]
            if ref.shape == values[node.name].shape:
                e = rel_err(values[node.name], ref)
                if e > self.budget:
                    return node.name, was, e
        return None, "", 0.0
