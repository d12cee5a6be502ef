"""torch functions and Tensor methods that move or combine tensors without weights -> convc layers:
reshapes (as flatten), residual adds, concatenation, spatial means, and static sizes.

Handlers mirror torch's signatures after a leading `ctx`, as in torch_functions.py.
"""
from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
import torch

from convc.dsl import Value
from convc.frontends.building import (
    FrontendError,
    bias_add_constant,
    reshape_as_flatten,
    resolve_target_shape,
)
from convc.frontends.torch_context import Const, Ctx


def flatten(ctx: Ctx, input: Any, start_dim: int = 0, end_dim: int = -1) -> Value:
    x = ctx.value(input)
    rank = len(x.shape)
    s, e = start_dim % rank, end_dim % rank
    target = x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return reshape_as_flatten(ctx.net, x, target, ctx.name, "flatten")


def reshape(ctx: Ctx, input: Any, shape: Any) -> Value:
    x = ctx.value(input)
    target = resolve_target_shape(x.shape, _shape_arg(shape), zero_copies=False, where="reshape")
    return reshape_as_flatten(ctx.net, x, target, ctx.name, "reshape")


def view_method(ctx: Ctx, self: Any, *shape: Any) -> Value:
    """x.view(n, -1), x.view((n, -1)) and x.view(size) all name the target shape."""
    return reshape(ctx, self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)


def _shape_arg(shape: Any) -> list[int]:
    dims = shape.tensor.tolist() if isinstance(shape, Const) else list(shape)
    return [int(d.tensor.item()) if isinstance(d, Const) else int(d) for d in dims]


def add(ctx: Ctx, input: Any, other: Any, alpha: Any = 1) -> Value:
    if alpha != 1:
        raise FrontendError(f"add with alpha={alpha} is not supported")
    if not isinstance(input, Value):
        input, other = other, input
    x = ctx.value(input)
    if isinstance(other, Value):
        return ctx.net.add(x, other, name=ctx.name)
    return _add_constant(ctx, x, other)


def _add_constant(ctx: Ctx, x: Value, other: Any) -> Value:
    if isinstance(other, Const):
        return bias_add_constant(ctx.net, x, other.tensor.detach().cpu().numpy(), ctx.name, other.key, "add")
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        return bias_add_constant(ctx.net, x, np.full((), float(other), np.float32), ctx.name, None, "add")
    raise FrontendError(f"cannot add {_kind(other)} to a tensor")


def _kind(v: Any) -> str:
    return type(v).__name__


def cat(ctx: Ctx, tensors: Any, dim: int = 0) -> Value:
    values = [ctx.value(t, "each concatenated operand") for t in tensors]
    return ctx.net.concat(values, axis=int(dim), name=ctx.name)


def concatenate(ctx: Ctx, tensors: Any, axis: int = 0) -> Value:
    return cat(ctx, tensors, axis)


def mean(ctx: Ctx, input: Any, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Value:
    """The mean over every spatial axis is a global average pool (ResNet-style heads write it so)."""
    x = ctx.value(input)
    rank = len(x.shape)
    dims = sorted({int(d) % rank for d in ((dim,) if isinstance(dim, int) else dim or ())})
    if dtype is not None or rank < 3 or dims != list(range(2, rank)):
        raise FrontendError(f"mean over dims {dim} of {x.shape} is not supported; convc supports the mean "
                            f"over all spatial axes (a global average pool)")
    y = ctx.net.global_avg_pool(x, name=ctx.name)
    return y if keepdim else reshape_as_flatten(ctx.net, y, x.shape[:2], ctx.fresh("flatten"), "mean")


def identity(ctx: Ctx, self: Any, *args: Any, **kwargs: Any) -> Value:
    return ctx.value(self)


# ---------------------------------------------------------------------------- static sizes
def size(ctx: Ctx, self: Any, dim: Any = None) -> Any:
    x = ctx.value(self)
    return torch.Size(x.shape) if dim is None else x.shape[int(dim)]


def dim(ctx: Ctx, self: Any) -> int:
    return len(ctx.value(self).shape)


def getattr_(ctx: Ctx, obj: Any, name: str, *default: Any) -> Any:
    if isinstance(obj, Value):
        if name == "shape":
            return torch.Size(obj.shape)
        if name == "ndim":
            return len(obj.shape)
        raise FrontendError(f"reading tensor attribute .{name} is not supported")
    return builtins.getattr(obj, name, *default)


def getitem(ctx: Ctx, obj: Any, index: Any) -> Any:
    if isinstance(obj, Value):
        raise FrontendError(f"indexing or slicing a tensor ({index!r}) is not supported")
    return obj[index]


def sym_size(ctx: Ctx, self: Any, dim: int) -> int:
    return ctx.value(self).shape[int(dim)]
