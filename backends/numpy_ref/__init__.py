"""The NumPy reference backend: runs any verified graph in float32 or float64, NCHW, vectorized.
Every other backend is checked against it.

    model = convc.compile(net, backend="numpy", dtype="float64")
    y = model(x)                           # NumPy arrays in and out

Convolutions run by `node.attrs["algo"]`: "direct", "im2col", "winograd_2x2", "winograd_4x4" or
"depthwise" (groups == input channels only); with no algo the backend picks im2col (one BLAS GEMM per
group, the fastest that applies to every conv). Where numba runs (jit.py), depthwise convs, Winograd
transforms, epilogues and some elementwise ops run as compiled loops; `probes` lets the CPU cost model
time the compiled Winograd transforms without importing this package.
Parameters are cast to the working dtype once, at compile time, by the interpreter.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.backend import Backend, Capabilities, LoweringContext
from convc.errors import BackendError, OptionError
from convc.interpreter import InterpretedModel, Step, kernel_lowerings
from convc.ir import Graph, Node
from convc.ops import CONV_ALGOS, CONV_OPS
from convc.params import to_numpy
from convc.types import numpy_dtype

from convc.backends.numpy_ref import (
    conv_depthwise, conv_direct, conv_im2col, conv_winograd, conv_winograd_jit, elementwise, layout, linear,
    normalization, pooling,
)

DTYPES = ("float32", "float64")
DEFAULT_CONV_ALGO = "im2col"
KERNELS = {
    **conv_direct.KERNELS, **conv_im2col.KERNELS, **conv_winograd.KERNELS, **conv_depthwise.KERNELS,
    **pooling.KERNELS, **elementwise.KERNELS, **normalization.KERNELS, **linear.KERNELS,
    **layout.KERNELS,
}


# The algorithms of convc.ops.CONV_ALGOS that this backend has kernels for, in that order.
NUMPY_CONV_ALGOS = tuple(a for a in CONV_ALGOS if ("conv2d", a) in KERNELS)


def is_conv(node: Node) -> bool:
    return node.op in CONV_OPS


def default_algo(node: Node, ctx: LoweringContext | None = None) -> str | None:
    """The algorithm for a conv node whose attrs leave it open (None for every other op)."""
    return DEFAULT_CONV_ALGO if is_conv(node) else None


def algo_problem(node: Node, graph: Graph) -> str | None:
    """Why this backend cannot run `node` of `graph` with its chosen conv algorithm, or None if it can."""
    algo = node.attrs.get("algo")
    if not is_conv(node) or algo is None:
        return None
    if algo not in NUMPY_CONV_ALGOS:
        return f"node '{node.name}': conv algorithm {algo!r} is not one of {', '.join(NUMPY_CONV_ALGOS)}"
    if algo in conv_winograd.TILE_OF_ALGO:
        return conv_winograd.winograd_problem(node, algo)
    if algo == "depthwise":
        return conv_depthwise.depthwise_problem(node, graph.node(node.inputs[0]).type.shape[1])
    return None


def to_native(value: Any, dtype: str) -> np.ndarray:
    """A C-contiguous NumPy array of the working dtype (no copy when it already is one)."""
    return np.ascontiguousarray(to_numpy(value), dtype=numpy_dtype(dtype))


def compile_graph(target: Backend[LoweringContext, Step], graph: Graph, *, dtype: str = "float32",
                  **options: Any) -> InterpretedModel:
    """Checks every conv node's algorithm up front, then builds the interpreter."""
    if options:
        raise OptionError(f"backend '{target.name}' takes no options; got {', '.join(sorted(options))}")
    for node in graph.nodes():
        problem = algo_problem(node, graph)
        if problem:
            raise BackendError(problem)
    return InterpretedModel(target, graph, dtype, to_native=to_native, to_numpy=np.asarray, cast=to_native)


backend = Backend(
    "numpy",
    Capabilities(ops=frozenset(op for op, _ in KERNELS), conv_algos=NUMPY_CONV_ALGOS, dtypes=DTYPES,
                 fused_epilogue=True, devices=("cpu",)),
    kernel_lowerings(KERNELS),
    build=compile_graph,
    default_algo=default_algo,
    description="NumPy reference: float32/float64, NCHW, BLAS GEMMs; the oracle other backends answer to",
    probes=conv_winograd_jit.PROBES,
)

__all__ = ["backend", "default_algo", "algo_problem", "KERNELS"]
