"""torch functions, Tensor methods and modules of mobile and modern CNNs -> convc layers: hard
activations, SiLU, GELU, clamp / ReLU6 / Hardtanh, LayerNorm, the broadcasting multiply, stochastic
depth (the identity at inference), channel shuffle, chunk / split / slicing along channels, and the
permutes and views that ConvNeXt and ShuffleNet use (kept as lazy_layout recipes until they return
to NCHW).

Handlers mirror torch's signatures after a leading `ctx`, as in torch_functions.py; the tables at the
end are merged into torch_functions.FUNCTIONS / METHODS and torch_modules.MODULES.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from convc.dsl import Value
from convc.frontends import torch_shapes
from convc.frontends.building import FrontendError, channel_scale_constant, resolve_target_shape
from convc.frontends.lazy_layout import ChannelGroups, Permuted, join_channels, permuted, split_channels
from convc.frontends.torch_context import Const, Ctx


def _unary(ctx: Ctx, input: Any, build: Callable[[Value], Value]) -> Any:
    """An elementwise op: on a channels-last view it acts on the NCHW value underneath."""
    if isinstance(input, Permuted):
        return Permuted(build(input.base))
    return build(ctx.value(input))


# ---------------------------------------------------------------------------- activations
def hardswish(ctx: Ctx, input: Any, inplace: bool = False) -> Any:
    return _unary(ctx, input, lambda x: ctx.net.hardswish(x, name=ctx.name))


def hardsigmoid(ctx: Ctx, input: Any, inplace: bool = False) -> Any:
    return _unary(ctx, input, lambda x: ctx.net.hardsigmoid(x, name=ctx.name))


def silu(ctx: Ctx, input: Any, inplace: bool = False) -> Any:
    return _unary(ctx, input, lambda x: ctx.net.silu(x, name=ctx.name))


def gelu(ctx: Ctx, input: Any, approximate: str = "none") -> Any:
    return _unary(ctx, input, lambda x: ctx.net.gelu(x, approximate=str(approximate), name=ctx.name))


def relu(ctx: Ctx, input: Any, inplace: bool = False) -> Any:
    return _unary(ctx, input, lambda x: ctx.net.relu(x, name=ctx.name))


def hardtanh(ctx: Ctx, input: Any, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Any:
    return _unary(ctx, input, lambda x: ctx.net.clip(x, float(min_val), float(max_val), name=ctx.name))


def relu6(ctx: Ctx, input: Any, inplace: bool = False) -> Any:
    return hardtanh(ctx, input, 0.0, 6.0)


def clamp(ctx: Ctx, input: Any, min: Any = None, max: Any = None) -> Any:
    for what, v in (("min", min), ("max", max)):
        if v is not None and not isinstance(v, (int, float)):
            raise FrontendError(f"clamp with a tensor {what} ({type(v).__name__}) is not supported; convc "
                                f"clamps to constant numbers")
    lo = -math.inf if min is None else float(min)
    hi = math.inf if max is None else float(max)
    return _unary(ctx, input, lambda x: ctx.net.clip(x, lo, hi, name=ctx.name))


def stochastic_depth(ctx: Ctx, input: Any, p: float, mode: str, training: bool = True) -> Any:
    """torchvision.ops.stochastic_depth: the identity at inference (and whenever p == 0)."""
    if training and p > 0:
        raise FrontendError("stochastic depth in training mode drops rows at random; call model.eval() "
                            "before importing")
    return input


# ---------------------------------------------------------------------------- normalization
def layer_norm(ctx: Ctx, input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """LayerNorm over the channels only: of a channels-last view (ConvNeXt) or of an (N, C) tensor."""
    shape = tuple(int(d) for d in ((normalized_shape,) if isinstance(normalized_shape, int)
                                   else normalized_shape))
    x = input.base if isinstance(input, Permuted) else ctx.value(input)
    channels = x.shape[1]
    if shape != (channels,) or not (isinstance(input, Permuted) or len(x.shape) == 2):
        logical = input.shape if isinstance(input, Permuted) else x.shape
        raise FrontendError(f"layer norm over the last {len(shape)} axes {shape} of {logical} is not "
                            f"supported; convc normalizes over channels (a channels-last tensor's last axis)")
    y = ctx.net.layer_norm(x, eps=float(eps), name=ctx.name)
    w = Const(torch.ones(channels)) if weight is None else ctx.const(weight, "weight")
    b = Const(torch.zeros(channels)) if bias is None else ctx.const(bias, "bias")
    ctx.bind(y, "weight", w)
    ctx.bind(y, "bias", b)
    return Permuted(y) if isinstance(input, Permuted) else y


def layer_norm_aten_order(ctx: Ctx, input: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
                          eps: float = 1e-5, cudnn_enable: bool = True) -> Any:
    return layer_norm(ctx, input, normalized_shape, weight, bias, eps)


def permuted_linear(ctx: Ctx, input: Permuted, weight: Any, bias: Any = None) -> Permuted:
    """A linear layer over a channels-last view's last axis is a 1x1 convolution of the NCHW value
    (torch_functions.linear hands such inputs here)."""
    x = input.base
    w = ctx.const(weight, "weight")
    b = None if bias is None else ctx.const(bias, "bias")
    nd = len(x.shape) - 2
    y = ctx.net.conv(x, int(w.tensor.shape[0]), (1,) * nd, bias=b is not None, name=ctx.name, ndim=nd)
    ctx.bind(y, "weight", w)
    ctx.bind(y, "bias", b)
    return Permuted(y)


# ---------------------------------------------------------------------------- multiply
def mul(ctx: Ctx, input: Any, other: Any) -> Any:
    """a * b of two computed tensors (broadcasting one), or a tensor times a per-channel or scalar constant
    (a channel_scale layer: ConvNeXt's layer scale)."""
    if not isinstance(input, (Value, Permuted)):
        input, other = other, input
    if isinstance(input, Permuted) and isinstance(other, Permuted):
        return Permuted(ctx.net.mul(input.base, other.base, name=ctx.name))
    x = ctx.value(input)
    if isinstance(other, Value):
        return ctx.net.mul(x, other, name=ctx.name)
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        return channel_scale_constant(ctx.net, x, np.float32(other), ctx.name, None, "mul")
    if isinstance(other, Const):
        c = other.tensor.detach().cpu()
        array = c.double().numpy() if c.dtype == torch.float64 else c.float().numpy()
        return channel_scale_constant(ctx.net, x, array, ctx.name, other.key, "mul")
    raise FrontendError(f"cannot multiply a tensor by {type(other).__name__}")


# ---------------------------------------------------------------------------- layout
def _dims(dims: tuple[Any, ...]) -> tuple[int, ...]:
    """permute(0, 2, 3, 1) and permute((0, 2, 3, 1)) alike."""
    if len(dims) == 1 and not isinstance(dims[0], int):
        dims = tuple(dims[0])
    return tuple(int(d) for d in dims)


def permute(ctx: Ctx, input: Any, *dims: Any) -> Any:
    if not isinstance(input, (Value, Permuted, ChannelGroups)):
        ctx.value(input)
    perm = _dims(dims)
    result = permuted(input, perm)
    if result is None:
        raise FrontendError(f"permute{perm} of {input.shape} is not supported; convc follows a permute to "
                            f"channels-last and back (ConvNeXt) and a swap of channel groups (ShuffleNet)")
    return result


def transpose(ctx: Ctx, input: Any, dim0: int, dim1: int) -> Any:
    if not isinstance(input, (Value, Permuted, ChannelGroups)):
        ctx.value(input)
    rank = len(input.shape)
    perm = list(range(rank))
    perm[int(dim0) % rank], perm[int(dim1) % rank] = perm[int(dim1) % rank], perm[int(dim0) % rank]
    return permute(ctx, input, tuple(perm))


def reshape(ctx: Ctx, input: Any, shape: Any) -> Any:
    """Reshapes that split the channels into (groups, C/groups) or join them back, then the others."""
    dims = torch_shapes._shape_arg(shape)
    if isinstance(input, ChannelGroups):
        target = resolve_target_shape(input.shape, dims, zero_copies=False, where="reshape")
        return join_channels(ctx.net, input, target, ctx.name)
    x = ctx.value(input)
    target = resolve_target_shape(x.shape, dims, zero_copies=False, where="reshape")
    return split_channels(x, target) or torch_shapes.reshape(ctx, x, target)


def view_method(ctx: Ctx, self: Any, *shape: Any) -> Any:
    return reshape(ctx, self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)


def flatten(ctx: Ctx, input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    if isinstance(input, ChannelGroups):
        s = input.shape
        start, end = start_dim % len(s), end_dim % len(s)
        return reshape(ctx, input, s[:start] + (math.prod(s[start:end + 1]),) + s[end + 1:])
    return torch_shapes.flatten(ctx, input, start_dim, end_dim)


def contiguous(ctx: Ctx, self: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(self, (Permuted, ChannelGroups)):
        return self
    return ctx.value(self)


def channel_shuffle(ctx: Ctx, input: Any, groups: int) -> Value:
    return ctx.net.channel_shuffle(ctx.value(input), int(groups), name=ctx.name)


def _slices(ctx: Ctx, x: Value, sizes: list[int], dim: int) -> tuple[Value, ...]:
    axis = dim % len(x.shape)
    out, start = [], 0
    for i, size in enumerate(sizes):
        name = ctx.fresh(str(i)) if i else ctx.name
        out.append(ctx.net.slice(x, start, start + size, axis=axis, name=name))
        start += size
    return tuple(out)


def chunk(ctx: Ctx, input: Any, chunks: int, dim: int = 0) -> tuple[Value, ...]:
    x = ctx.value(input)
    size = x.shape[int(dim) % len(x.shape)]
    step = -(-size // int(chunks))
    return _slices(ctx, x, [min(step, size - i) for i in range(0, size, step)], int(dim))


def split(ctx: Ctx, tensor: Any, split_size_or_sections: Any, dim: int = 0) -> tuple[Value, ...]:
    x = ctx.value(tensor)
    size = x.shape[int(dim) % len(x.shape)]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [min(step, size - i) for i in range(0, size, step)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
    return _slices(ctx, x, sizes, int(dim))


def narrow(ctx: Ctx, input: Any, dim: int, start: int, length: int) -> Value:
    x = ctx.value(input)
    axis = int(dim) % len(x.shape)
    begin = int(start) % x.shape[axis]
    return ctx.net.slice(x, begin, begin + int(length), axis=axis, name=ctx.name)


def getitem(ctx: Ctx, obj: Any, index: Any) -> Any:
    """x[:, a:b] (any one axis sliced with step 1, the others whole) is a slice layer."""
    if not isinstance(obj, Value):
        return torch_shapes.getitem(ctx, obj, index)
    items = index if isinstance(index, tuple) else (index,)
    whole = slice(None)
    cut = [i for i, s in enumerate(items) if s != whole]
    if len(cut) == 1 and isinstance(items[cut[0]], slice) and items[cut[0]].step in (None, 1) and \
            len(items) <= len(obj.shape) and cut[0] > 0:
        axis = cut[0]
        start, stop, _ = items[axis].indices(obj.shape[axis])
        return ctx.net.slice(obj, start, stop, axis=axis, name=ctx.name)
    return torch_shapes.getitem(ctx, obj, index)


# ---------------------------------------------------------------------------- tables
FUNCTIONS: dict[Any, Callable[..., Any]] = {
    F.hardswish: hardswish, F.hardsigmoid: hardsigmoid, F.silu: silu, F.gelu: gelu, F.relu6: relu6,
    F.hardtanh: hardtanh, torch.clamp: clamp, torch.clip: clamp, F.relu: relu, torch.relu: relu,
    F.layer_norm: layer_norm, torch.layer_norm: layer_norm_aten_order,
    operator.mul: mul, operator.imul: mul, torch.mul: mul, torch.multiply: mul,
    torch.permute: permute, torch.transpose: transpose, torch.swapaxes: transpose,
    torch.reshape: reshape, torch.flatten: flatten, torch.channel_shuffle: channel_shuffle,
    torch.chunk: chunk, torch.split: split, torch.narrow: narrow, operator.getitem: getitem,
    "torchvision.ops.stochastic_depth.stochastic_depth": stochastic_depth,
}
for _name in ("hardswish", "hardsigmoid", "silu", "relu6", "hardtanh"):
    FUNCTIONS[getattr(torch._C._nn, _name)] = FUNCTIONS[getattr(F, _name)]
FUNCTIONS[torch._C._nn.gelu] = gelu

METHODS: dict[str, Callable[..., Any]] = {
    "mul": mul, "mul_": mul, "__mul__": mul, "__rmul__": mul, "multiply": mul,
    "clamp": clamp, "clamp_": clamp, "clip": clamp, "clip_": clamp, "relu": relu, "relu_": relu,
    "permute": permute, "transpose": transpose, "swapaxes": transpose, "view": view_method,
    "reshape": view_method, "flatten": flatten, "contiguous": contiguous, "chunk": chunk, "split": split,
    "narrow": narrow,
}


def _module(fn: Callable[..., Any], *attrs: str) -> Callable[..., Any]:
    """A module handler calling `fn` with the module's attributes `attrs` after the input."""
    def handler(ctx: Ctx, m: torch.nn.Module, path: str, input: Any) -> Any:
        return fn(ctx, input, *(getattr(m, a) for a in attrs))
    return handler


def _param(m: torch.nn.Module, path: str, attr: str) -> Const | None:
    t = getattr(m, attr, None)
    return None if t is None else Const(t.detach(), f"{path}.{attr}" if path else attr)


def _layer_norm_module(ctx: Ctx, m: torch.nn.Module, path: str, input: Any) -> Any:
    weight, bias = _param(m, path, "weight"), _param(m, path, "bias")
    return layer_norm(ctx, input, m.normalized_shape, weight, bias, m.eps)


MODULES: dict[type, Callable[..., Any]] = {
    torch.nn.Hardswish: _module(hardswish), torch.nn.Hardsigmoid: _module(hardsigmoid),
    torch.nn.SiLU: _module(silu), torch.nn.GELU: _module(gelu, "approximate"),
    torch.nn.ReLU6: _module(hardtanh, "min_val", "max_val"), torch.nn.Hardtanh: _module(hardtanh, "min_val",
                                                                                        "max_val"),
    torch.nn.ReLU: _module(relu), torch.nn.LayerNorm: _layer_norm_module,
    torch.nn.ChannelShuffle: _module(channel_shuffle, "groups"),
}
