"""The graph as one straight-line Python function over tensors.

Eager mode calls `GraphProgram.forward` directly; the torch-compile backend hands the same method to
torch.compile, which unrolls the loop (the node list is fixed) into a single FX graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from convc.backend import Backend, LoweringContext
from convc.errors import BackendError
from convc.interpreter import Step, lower_graph
from convc.ir import Graph, Node


@dataclass(frozen=True)
class ProgramStep:
    """One node to run: its lowered step and the values nobody reads after it (released to save memory)."""

    node: Node
    run: Step
    release: tuple[str, ...]


class GraphProgram:
    """`program.forward(*inputs)` -> a tuple with one tensor per graph output."""

    def __init__(self, backend: Backend[LoweringContext, Step], graph: Graph, dtype: str,
                 params: dict[str, torch.Tensor]) -> None:
        self.backend_name = backend.name
        self.params = params
        self.input_names = tuple(n.name for n in graph.inputs)
        self.output_names = tuple(graph.outputs)
        lowered = lower_graph(backend, graph, dtype)
        last_use: dict[str, int] = {}
        for i, (node, _) in enumerate(lowered):
            for src in node.inputs:
                last_use[src] = i
        keep = set(self.output_names) | set(params)
        self.steps = tuple(
            ProgramStep(node, step, tuple(v for v, j in last_use.items() if j == i and v not in keep))
            for i, (node, step) in enumerate(lowered)
        )

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Runs every node; traceable by torch.compile (no try/except, no side effects)."""
        env: dict[str, torch.Tensor] = dict(self.params)
        env.update(zip(self.input_names, inputs))
        for step in self.steps:
            env[step.node.name] = step.run([env[i] for i in step.node.inputs])
            for value in step.release:
                del env[value]
        return tuple(env[o] for o in self.output_names)

    def forward_checked(self, *inputs: torch.Tensor, keep_all: bool = False) -> dict[str, torch.Tensor]:
        """Eager run whose kernel failures name the node; returns the environment (every value when
        `keep_all`, else at least the outputs)."""
        env: dict[str, torch.Tensor] = dict(self.params)
        env.update(zip(self.input_names, inputs))
        for step in self.steps:
            node = step.node
            try:
                env[node.name] = step.run([env[i] for i in node.inputs])
            except (RuntimeError, ValueError, TypeError, MemoryError) as e:
                raise BackendError(f"backend '{self.backend_name}' failed on node '{node.name}' ({node.op}): "
                                   f"{type(e).__name__}: {first_line(e)}") from e
            if not keep_all:
                for value in step.release:
                    del env[value]
        return env


def first_line(e: Any) -> str:
    """torch error messages can run to many lines of C++ context; the first says what went wrong."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""
