"""`convc.compile`: DSL network or graph -> pass pipeline -> backend -> CompiledModel."""
from __future__ import annotations

from typing import Any

from convc.backend import CompiledModel
from convc.dsl import Network
from convc.errors import OptionError
from convc.ir import Graph
from convc.registry import get_backend
from convc.types import check_dtype


def as_graph(model: Network | Graph) -> Graph:
    if isinstance(model, Network):
        return model.graph
    if isinstance(model, Graph):
        return model
    raise OptionError(f"compile() takes a convc Network or Graph, got {type(model).__name__}")


def compile(model: Network | Graph, backend: str = "numpy", dtype: str = "float32",
            **options: Any) -> CompiledModel:
    """Verifies the graph, runs the pass pipeline and hands the result to `backend`."""
    graph = as_graph(model).copy()
    graph.verify()
    dtype = check_dtype(dtype)
    target = get_backend(backend)
    return target.compile(graph, dtype=dtype, **options)
