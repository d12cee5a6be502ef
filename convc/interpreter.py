"""Kernel-style lowering and the interpreter that runs it: each node lowers to its kernel bound to the node
(a `Step`: operand arrays -> result), and the graph runs node by node, releasing each intermediate after
its last use. The NumPy and torch backends lower this way, with different kernels and array types.

    KERNELS: dict[LoweringKey, Kernel] = {("relu", None): lambda node, args: np.maximum(args[0], 0)}
    def build(backend, graph, *, dtype):
        return InterpretedModel(backend, graph, dtype, to_native=..., to_numpy=np.asarray, cast=...)
    backend = Backend("mine", caps, kernel_lowerings(KERNELS), build=build)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from convc.backend import (
    Backend,
    CompiledModel,
    LoweringContext,
    LoweringKey,
    LoweringTable,
    check_inputs,
    numpy_inputs,
)
from convc.errors import BackendError
from convc.ir import Graph, Node

Kernel = Callable[[Node, list[Any]], Any]  # (node, operand arrays) -> result array
Step = Callable[[list[Any]], Any]  # a lowered node: operand arrays -> result array


@dataclass(frozen=True)
class KernelLowering:
    """The lowering of a kernel-style backend: `lowering(node, ctx)` -> the kernel bound to `node`."""

    kernel: Kernel

    def __call__(self, node: Node, ctx: LoweringContext, /) -> Step:
        return partial(self.kernel, node)


def kernel_lowerings(kernels: Mapping[LoweringKey, Kernel]) -> LoweringTable[LoweringContext, Step]:
    """A table of kernels, keyed by (op, algo), as the lowering table a Backend takes."""
    return {key: KernelLowering(kernel) for key, kernel in kernels.items()}


def lower_graph(backend: Backend[LoweringContext, Step], graph: Graph, dtype: str) -> list[tuple[Node, Step]]:
    """Every computing node (not input / param) of `graph` in order, with its lowered step."""
    ctx = LoweringContext(graph, dtype)
    return [(n, backend.lower(n, ctx)) for n in graph.nodes() if n.op not in ("input", "param")]


class InterpretedModel(CompiledModel):
    """`model(*inputs)` -> the output (or a tuple of outputs) as native arrays."""

    def __init__(self, backend: Backend[LoweringContext, Step], graph: Graph, dtype: str,
                 to_native: Callable[[np.ndarray, str], Any], to_numpy: Callable[[Any], np.ndarray],
                 cast: Callable[[Any, str], Any]) -> None:
        self.backend = backend.name
        self.graph = graph
        self.dtype = dtype
        self._to_native = to_native
        self._to_numpy = to_numpy
        self._cast = cast
        lowered = lower_graph(backend, graph, dtype)
        self._order = [node for node, _ in lowered]
        self._steps = [step for _, step in lowered]
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
        for node, step, dead in zip(self._order, self._steps, self._release_after):
            try:
                env[node.name] = step([env[i] for i in node.inputs])
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
        for node, step in zip(self._order, self._steps):
            env[node.name] = step([env[i] for i in node.inputs])
        return {k: self._to_numpy(v) for k, v in env.items()}

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        native = [self._to_native(x, self.dtype) for x in numpy_inputs(self.graph, inputs, self.backend)]
        out = self(*native)
        outs = out if isinstance(out, tuple) else (out,)
        return [self._to_numpy(o) for o in outs]
