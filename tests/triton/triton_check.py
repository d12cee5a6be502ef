"""Shared helpers for the Triton backend tests: compile on the CPU interpreter, compare against the NumPy
backend in float64 (an independent implementation), and build fused conv/linear nodes by hand.

    y = check(net, dtype="float16", algo="winograd_4x4")   # asserts rel_err <= budget, returns the output
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import convc
from convc.dsl import Network, Value
from convc.ir import Graph
from convc.numerics import budget, rel_err


def compile_triton(model: Network | Graph, dtype: str = "float32", **options: Any) -> Any:
    """No passes (opt_level=0): the tests control every attribute of the graph they build."""
    return convc.compile(model, backend="triton", dtype=dtype, device="cpu", opt_level=0, **options)


def reference(model: Network | Graph, *inputs: np.ndarray) -> list[np.ndarray]:
    """The NumPy backend in float64, with conv algorithms reset to its default (it has no implicit_gemm)."""
    g = (model.graph if isinstance(model, Network) else model).copy()
    for node in g.nodes(("conv1d", "conv2d", "conv3d")):
        g.replace_node(node.replace(attrs={**node.attrs, "algo": None}))
    return convc.compile(g, backend="numpy", dtype="float64", opt_level=0).run(*inputs)


def random_inputs(model: Network | Graph, seed: int = 0) -> list[np.ndarray]:
    g = model.graph if isinstance(model, Network) else model
    rng = np.random.default_rng(seed)
    return [rng.normal(size=n.type.shape).astype(np.float32) for n in g.inputs]


def check(model: Network | Graph, dtype: str = "float32", algo: str | None = None,
          inputs: Sequence[np.ndarray] | None = None, factor: float = 1.0,
          reference_model: Network | Graph | None = None, **options: Any) -> list[np.ndarray]:
    """Compiles with the Triton backend, runs, and asserts every output is within the dtype's budget of
    `reference_model` (default: the same graph) run by the NumPy backend in float64."""
    xs = list(inputs) if inputs is not None else random_inputs(model)
    outs = compile_triton(model, dtype, **options).run(*xs)
    refs = reference(reference_model if reference_model is not None else model, *xs)
    for out, ref in zip(outs, refs):
        err = rel_err(out, ref)
        assert err <= budget(dtype, algo) * factor, f"{dtype} {algo}: rel_err {err:.3g} > {budget(dtype, algo)}"
    return outs


def set_algo(net: Network, value: Value, algo: str | None) -> None:
    g = net.graph
    node = g.node(value.name)
    g.replace_node(node.replace(attrs={**node.attrs, "algo": algo}))


def apply_steps(net: Network, y: Value, steps: Sequence[tuple], residuals: Sequence[Value]) -> Value:
    """The unfused equivalent of an epilogue: separate activation and add nodes."""
    pending = list(residuals)
    for step in steps:
        if step[0] == "add":
            y = net.add(y, pending.pop(0))
        elif step[0] == "leaky_relu":
            y = net.leaky_relu(y, step[1])
        elif step[0] == "elu":
            y = net.elu(y, step[1])
        else:
            y = net.activation(y, step[0])
    return y


def fuse(net: Network, layer: Value, steps: Sequence[tuple], residuals: Sequence[Value] = ()) -> None:
    """Gives a conv/linear node a fused epilogue, as the fuse_epilogue pass would: inputs become
    (x, residual..., weight, bias)."""
    g = net.graph
    node = g.node(layer.name)
    n_params = len(g.param_slots(node))
    params = node.inputs[len(node.inputs) - n_params:]
    g.replace_node(node.replace(inputs=(node.inputs[0], *(r.name for r in residuals), *params),
                                attrs={**node.attrs, "epilogue": tuple(steps)}))
    g.verify()
