"""The backend contract: capabilities, a kernel table dispatched on (op, algo), and compiled models.

    backend = Backend("numpy", Capabilities(ops=..., conv_algos=("direct", "im2col"), dtypes=("float32",)))

    @backend.kernel("conv2d", algo="im2col")
    def conv2d_im2col(node, args): ...     # args: the node's operands, in order, as backend arrays

A backend is found through the `convc.backends` entry-point group; the core never imports one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convc.errors import BackendError
from convc.ir import Graph, Node

Kernel = Callable[[Node, list[Any]], Any]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can run; passes consult it (e.g. the algorithm choice picks only these)."""

    ops: frozenset[str]
    conv_algos: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    fused_epilogue: bool = True
    devices: tuple[str, ...] = ("cpu",)


@dataclass
class Backend:
    """A named kernel table plus a `compile` that turns a verified graph into a CompiledModel."""

    name: str
    capabilities: Capabilities
    kernels: dict[tuple[str, str | None], Kernel] = field(default_factory=dict)
    compiler: Callable[..., CompiledModel] | None = None
    default_algo: Callable[[Node], str | None] = lambda node: None
    description: str = ""

    def kernel(self, op: str, algo: str | None = None) -> Callable[[Kernel], Kernel]:
        """Registers `fn` as the kernel for `op` (and conv algorithm `algo`); returns it unchanged."""
        def register(fn: Kernel) -> Kernel:
            self.kernels[(op, algo)] = fn
            return fn
        return register

    def lookup(self, node: Node) -> Kernel:
        algo = node.attrs.get("algo") if "algo" in node.attrs else None
        if algo is None and (node.op, None) not in self.kernels:
            algo = self.default_algo(node)
        fn = self.kernels.get((node.op, algo))
        if fn is None:
            have = sorted(f"{op}/{a}" if a else op for op, a in self.kernels if op == node.op)
            what = f"{node.op}/{algo}" if algo else node.op
            raise BackendError(f"backend '{self.name}' has no kernel {what} for node '{node.name}'"
                               f"{'; it has ' + ', '.join(have) if have else ''}")
        return fn

    def compile(self, graph: Graph, *, dtype: str = "float32", **options: Any) -> CompiledModel:
        if dtype not in self.capabilities.dtypes:
            raise BackendError(f"backend '{self.name}' does not support dtype {dtype}; it supports "
                               f"{', '.join(self.capabilities.dtypes)}")
        unsupported = sorted({n.op for n in graph.nodes()} - self.capabilities.ops - {"input", "param"})
        if unsupported:
            raise BackendError(f"backend '{self.name}' cannot run ops {', '.join(unsupported)} "
                               f"(in graph '{graph.name}')")
        if self.compiler is None:
            raise BackendError(f"backend '{self.name}' has no compiler")
        return self.compiler(self, graph, dtype=dtype, **options)


class CompiledModel:
    """A runnable compiled graph. `model(*inputs)` takes and returns the backend's native arrays;
    `model.run(*arrays)` takes NumPy arrays and returns a list of NumPy arrays on any backend."""

    backend: str
    graph: Graph
    dtype: str

    def __call__(self, *inputs: Any) -> Any:
        raise NotImplementedError

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError


def check_inputs(graph: Graph, inputs: tuple[Any, ...], backend: str) -> None:
    """Raises a BackendError naming the graph input whose count, shape or rank differs."""
    expected = graph.inputs
    if len(inputs) != len(expected):
        raise BackendError(f"graph '{graph.name}' takes {len(expected)} input(s) "
                           f"({', '.join(n.name for n in expected)}), got {len(inputs)}")
    for node, value in zip(expected, inputs):
        shape = tuple(getattr(value, "shape", ()))
        if shape != node.type.shape:
            raise BackendError(f"input '{node.name}' of graph '{graph.name}' on backend '{backend}': "
                               f"expected shape {node.type.shape}, got {shape}")
