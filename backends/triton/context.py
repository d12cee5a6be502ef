"""What a Triton lowering gets besides its node: the memory plan, the packed-parameter cache and the device.

    ctx = NodeContext(graph=g, dtype="float16", node=node, plan=plan, packed={}, device="cuda")
    ctx.x, ctx.out              # the planned views of the node's first input and its output
    ctx.pack("gemm", make)      # a packed weight, built once per module
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from convc.backend import LoweringContext
from convc.backends.triton.common import TORCH_DTYPES, dot_mode
from convc.backends.triton.launch import View
from convc.backends.triton.memory import MemoryPlan
from convc.backends.triton.packing import pack_vector
from convc.ir import Node
from convc.ops import input_scale_inputs


@dataclass
class NodeContext(LoweringContext):
    """Everything a lowering needs about one node of one compiled variant (one set of input shapes)."""

    node: Node
    plan: MemoryPlan
    packed: dict[tuple[str, str], torch.Tensor]
    device: str
    tf32: bool = False
    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]

    @property
    def dot_mode(self) -> int:
        return dot_mode(self.dtype, self.tf32)

    @property
    def out(self) -> View:
        return self.plan.views[self.node.name]

    @property
    def x(self) -> View:
        return self.plan.views[self.node.inputs[0]]

    def residuals(self) -> list[View]:
        """The views the epilogue's ("add",) steps read (a conv's input scale is not one of them)."""
        acts = self.graph.activation_inputs(self.node)
        return [self.plan.views[v] for v in acts[1:len(acts) - input_scale_inputs(self.node.attrs)]]

    def input_scale(self) -> View | None:
        """The [N, C] view of a conv's input scale (attrs["input_scale"]), or None."""
        if not input_scale_inputs(self.node.attrs):
            return None
        return self.plan.views[self.graph.activation_inputs(self.node)[-1]]

    def param(self, slot: str) -> np.ndarray | None:
        return self.graph.param_of(self.node, slot)

    def pack(self, kind: str, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A packed parameter, built once per module and shared by every batch-size variant."""
        key = (self.node.name, kind)
        if key not in self.packed:
            self.packed[key] = make()
        return self.packed[key]

    def bias(self) -> torch.Tensor | None:
        b = self.param("bias")
        return None if b is None else self.pack("bias", lambda: pack_vector(b, self.device))
