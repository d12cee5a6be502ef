"""A backend that wraps another and times every node it runs.

    model = convc.compile(net, backend="timed-numpy")
    model.run(x)                              # the NumPy backend's outputs, bit for bit
    get_backend("timed-numpy").timings        # [NodeTime(node='conv1', op='conv2d', seconds=...), ...]

It keeps the wrapped backend's capabilities, lowerings and build; only each lowered node is wrapped in a
timer. It wraps backends whose lowered node is a callable step over operand arrays (numpy, torch).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from convc.backend import Backend, Lowering, LoweringContext
from convc.interpreter import Step
from convc.ir import Node
from convc.registry import get_backend


@dataclass(frozen=True)
class NodeTime:
    node: str
    op: str
    seconds: float


@dataclass
class TimedBackend(Backend[LoweringContext, Step]):
    """`inner`'s lowering and build, with a timer around each node's step; runs append to `timings`."""

    inner: Any = None
    timings: list[NodeTime] = field(default_factory=list)

    def lowering_of(self, node: Node, ctx: LoweringContext) -> Lowering[LoweringContext, Step]:
        return self.inner.lowering_of(node, ctx)  # the wrapped backend's own dispatch rules

    def lower(self, node: Node, ctx: LoweringContext) -> Step:
        step = self.inner.lower(node, ctx)

        def timed_step(args: list[Any]) -> Any:
            start = time.perf_counter()
            out = step(args)
            self.timings.append(NodeTime(node.name, node.op, time.perf_counter() - start))
            return out
        return timed_step


def timed(inner: Backend[LoweringContext, Step]) -> TimedBackend:
    return TimedBackend(f"timed-{inner.name}", inner.capabilities, inner.lowerings, inner.build,
                        inner.default_algo, f"{inner.name}, timing every node", inner=inner)


backend = timed(get_backend("numpy"))
