"""The ONNX graph under construction while convc writes one out (onnx_export.py walks the graph,
onnx_export_ops.py writes the ops): nodes, initializers, and typed constants.

    w = OnnxWriter(graph)
    half = w.scalar("half", 0.5, "float32")          # a float32 initializer named 'half'
    w.emit("Mul", [x, half], "y")                      # node 'y' computes x * 0.5
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.errors import ConvcError
from convc.ir import Graph

OPSET = 17
ELEM_TYPE = {"float32": 1, "float64": 11, "float16": 10, "bfloat16": 16}


class ExportError(ConvcError):
    """The graph holds something ONNX cannot express as convc computes it."""


def require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("exporting ONNX models needs the onnx package: pip install convc[onnx]") from None
    return onnx


class OnnxWriter:
    """Collects ONNX nodes and initializers for one graph; `emit` adds a node, `constant` an initializer."""

    def __init__(self, graph: Graph) -> None:
        self.onnx = require_onnx()
        self.graph = graph
        self.nodes: list[Any] = []
        self.initializers: dict[str, np.ndarray] = {}

    def emit(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers[name] = np.ascontiguousarray(array)
        return name

    def scalar(self, name: str, value: float, dtype: str) -> str:
        """A 0-d initializer of the graph's float dtype (ONNX's Mul/Add/Clip want matching types)."""
        return self.constant(name, np.asarray(value, dtype=np.dtype(dtype)))

    def ints(self, name: str, values: list[int] | tuple[int, ...]) -> str:
        """An int64 vector initializer (shapes, slice bounds, axes)."""
        return self.constant(name, np.asarray(values, dtype=np.int64))

    def dtype_of(self, value: str) -> str:
        return self.graph.node(value).type.dtype
