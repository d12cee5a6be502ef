"""Runs a graph node by node through a backend's kernel table, releasing each intermediate after its
last use. The NumPy and torch backends are this interpreter with different kernels and array types.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convc.backend import Backend, CompiledModel, check_inputs
from convc.errors import BackendError
from convc.ir import Graph


class InterpretedModel(CompiledModel):
    """`model(*inputs)` -> the output (or a tuple of outputs) as native arrays."""

    def __init__(self, backend: Backend, graph: Graph, dtype: str,
                 to_native: Callable[[np.ndarray, str], Any], to_numpy: Callable[[Any], np.ndarray],
                 cast: Callable[[Any, str], Any]) -> None:
        self.backend = backend.name
        self.graph = graph
        self.dtype = dtype
        self._to_native = to_native
        self._to_numpy = to_numpy
        self._cast = cast
        self._order = [n for n in graph.nodes() if n.op not in ("input", "param")]
        self._kernels = [backend.lookup(n) for n in self._order]
        # Parameters are converted once, at compile time.
        self._params = {n.name: to_native(graph.params[n.name], dtype) for n in graph.nodes("param")}
        last_use: dict[str, int] = {}
        for i, node in enumerate(self._order):
            for src in node.inputs:
                last_use[src] = i
        self._release_after = [[v for v, j in last_use.items() if j == i and v not in graph.outputs
                                and v not in self._params] for i in range(len(self._order))]
        self.peak_live_values = 0

    def __call__(self, *inputs: Any) -> Any:
        check_inputs(self.graph, inputs, self.backend)
        env: dict[str, Any] = dict(self._params)
        for node, value in zip(self.graph.inputs, inputs):
            env[node.name] = self._cast(value, self.dtype)
        live = 0
        for node, kernel, dead in zip(self._order, self._kernels, self._release_after):
            try:
                env[node.name] = kernel(node, [env[i] for i in node.inputs])
            except BackendError:
                raise
            except (ValueError, TypeError, RuntimeError, MemoryError) as e:
                raise BackendError(f"backend '{self.backend}' failed on node '{node.name}' ({node.op}): "
                                   f"{type(e).__name__}: {e}") from e
            for v in dead:
                env.pop(v, None)
            live = max(live, len(env) - len(self._params))
        self.peak_live_values = live
        outs = tuple(env[o] for o in self.graph.outputs)
        return outs[0] if len(outs) == 1 else outs

    def trace(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Every node's value (nothing released), as NumPy arrays: for numerics checks."""
        env: dict[str, Any] = dict(self._params)
        for node, value in zip(self.graph.inputs, inputs):
            env[node.name] = self._cast(self._to_native(np.asarray(value), self.dtype), self.dtype)
        for node, kernel in zip(self._order, self._kernels):
            env[node.name] = kernel(node, [env[i] for i in node.inputs])
        return {k: self._to_numpy(v) for k, v in env.items()}

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        native = [self._to_native(np.asarray(x), self.dtype) for x in inputs]
        out = self(*native)
        outs = out if isinstance(out, tuple) else (out,)
        return [self._to_numpy(o) for o in outs]
