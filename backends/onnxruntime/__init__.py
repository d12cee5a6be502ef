"""onnxruntime as a convc backend: the graph exported to ONNX (convc.frontends.onnx_export) and run by
an onnxruntime CPU session. A baseline: what a CPU user would run instead of convc's own backends.

    model = convc.compile(net, backend="onnxruntime", threads=1)
    y = model(x)                                     # NumPy arrays in and out

Options: `threads` (onnxruntime's intra-op threads; default: onnxruntime's own choice, all cores) and
`graph_optimization` ("all" by default, "basic", "extended" or "disable": onnxruntime's own rewrites).
Needs `pip install convc[onnx]` (onnx and onnxruntime); without them compiling says so.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.backend import Backend, Capabilities, CompiledModel, check_inputs
from convc.errors import BackendError, OptionError
from convc.frontends.onnx_export import WRITERS, graph_to_onnx
from convc.ir import Graph
from convc.types import TensorType, numpy_dtype

DTYPES = ("float32",)  # onnxruntime's CPU provider has no float64 Conv
LEVELS = ("disable", "basic", "extended", "all")


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise BackendError("backend 'onnxruntime' needs the onnxruntime package: pip install convc[onnx]"
                           ) from None
    return onnxruntime


def in_dtype(graph: Graph, dtype: str) -> Graph:
    """A copy of `graph` whose inputs, values and parameters are all `dtype` (ONNX types are strict)."""
    g = graph.copy()
    for node in g.nodes():
        attrs = {**node.attrs, "dtype": dtype} if node.op == "input" else node.attrs
        g.replace_node(node.replace(attrs=attrs, type=TensorType(node.type.shape, dtype)))
        if node.op == "param":
            g.params[node.name] = np.asarray(g.params[node.name], numpy_dtype(dtype))
    return g


class OnnxRuntimeModel(CompiledModel):
    """An onnxruntime InferenceSession over the exported graph; NumPy arrays in and out."""

    def __init__(self, graph: Graph, dtype: str, session: Any, threads: int | None) -> None:
        self.backend = "onnxruntime"
        self.graph = graph
        self.dtype = dtype
        self.threads = threads
        self._session = session
        self._np_dtype = numpy_dtype(dtype)
        self._names = [n.name for n in graph.inputs]

    def __call__(self, *inputs: Any) -> Any:
        check_inputs(self.graph, inputs, self.backend)
        feed = {name: np.ascontiguousarray(x, self._np_dtype) for name, x in zip(self._names, inputs)}
        outs = self._session.run(None, feed)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        out = self(*inputs)
        return list(out) if isinstance(out, tuple) else [out]


def compile_graph(target: Backend, graph: Graph, *, dtype: str = "float32", threads: int | None = None,
                  graph_optimization: str = "all", **options: Any) -> OnnxRuntimeModel:
    if options:
        raise OptionError(f"backend 'onnxruntime' takes the options threads and graph_optimization; got "
                          f"{', '.join(sorted(options))}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise OptionError(f"backend 'onnxruntime': threads={threads!r} must be a positive integer")
    if graph_optimization not in LEVELS:
        raise OptionError(f"backend 'onnxruntime': graph_optimization={graph_optimization!r} is not one of "
                          f"{', '.join(LEVELS)}")
    ort = require_onnxruntime()
    typed = in_dtype(graph, dtype)
    proto = graph_to_onnx(typed)
    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    level = "DISABLE_ALL" if graph_optimization == "disable" else f"ENABLE_{graph_optimization.upper()}"
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{level}")
    try:
        session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own error types (e.g. no float64 kernel for an op)
        raise BackendError(f"onnxruntime cannot run graph '{graph.name}' in {dtype}: "
                           f"{type(e).__name__}: {str(e).strip().splitlines()[0]}") from None
    return OnnxRuntimeModel(typed, dtype, session, threads)


backend = Backend(
    "onnxruntime",
    Capabilities(ops=frozenset(WRITERS), conv_algos=("onnxruntime",), dtypes=DTYPES, fused_epilogue=True,
                 devices=("cpu",)),
    build=compile_graph,
    description="onnxruntime CPU session over the graph exported to ONNX (a baseline, not convc's kernels)",
)

__all__ = ["OnnxRuntimeModel", "backend", "compile_graph"]
