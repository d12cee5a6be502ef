"""What the torch handler tables (torch_functions.py, torch_modules.py, torch_shapes.py) and the fx walk
(fx_convert.py) share: the kinds of value an fx node can hold and the context a handler gets.

    def relu(ctx: Ctx, x: Any, inplace: bool = False) -> Value:     # a handler in torch_functions.py
        return ctx.net.relu(ctx.value(x), name=ctx.name)

A node's value is a convc `Value` (computed at run time), a `Const` (a tensor known at import) or a plain
Python value; an `Unusable` stands for what convc cannot produce.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from convc.dsl import Network, Value
from convc.frontends.building import FrontendError, bind_param, fresh_layer_name


@dataclass(frozen=True)
class Const:
    """A tensor known at import time; `key` is its name in the source model (a state_dict key)."""

    tensor: torch.Tensor
    key: str | None = None


@dataclass(frozen=True)
class Unusable:
    """A value convc cannot produce (a failed node's output, pooling indices); `why` says what it is."""

    why: str
    reported: bool = False  # True when the failure behind it is already in the problem list


@dataclass
class Ctx:
    """What a handler needs: the network, this node's layer name and a description for errors."""

    net: Network
    name: str
    where: str
    reserved: set[str] = field(default_factory=set)

    def fresh(self, suffix: str) -> str:
        """A further layer name for a node that expands into several layers ('<name>.<suffix>')."""
        return fresh_layer_name(self.net, f"{self.name}.{suffix}", self.reserved)

    def value(self, v: Any, what: str = "input") -> Value:
        if isinstance(v, Value):
            return v
        raise FrontendError(f"{what} must be a tensor computed by the model, got {describe_value(v)}")

    def const(self, v: Any, what: str) -> Const:
        if isinstance(v, Const):
            return v
        if isinstance(v, Value):
            raise FrontendError(f"{what} must be a parameter or constant, but it is computed at run time "
                                f"(%{v.name}); convc layers take fixed weights")
        raise FrontendError(f"{what} must be a tensor, got {describe_value(v)}")

    def bind(self, layer: Value, slot: str, c: Const | None) -> None:
        if c is not None:
            bind_param(self.net, layer, slot, c.key, c.tensor)


Handler = Callable[..., Any]


def describe_value(v: Any) -> str:
    """How a non-tensor operand reads in an error message."""
    if isinstance(v, Const):
        return f"a constant of shape {tuple(v.tensor.shape)}"
    if isinstance(v, Unusable):
        return v.why
    return f"{type(v).__name__} {v!r}"
