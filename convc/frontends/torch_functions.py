"""torch functions and Tensor methods -> convc layers.

Each handler mirrors the signature of the torch function it stands for (after a leading `ctx`), so the
positional and keyword arguments fx recorded bind exactly as they do in torch. Tensor methods reuse
the same handlers: `x.relu()` calls `relu(ctx, x)`. torch.nn modules map onto these in torch_modules.py.
"""
from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from convc.dsl import Value
from convc.frontends import torch_layers
from convc.frontends.building import FrontendError
from convc.frontends.lazy_layout import Permuted
from convc.frontends.torch_context import Const, Ctx, Unusable
from convc.frontends.torch_shapes import (
    add,
    cat,
    concatenate,
    dim,
    flatten,
    getattr_,
    getitem,
    identity,
    mean,
    reshape,
    size,
    sym_size,
    view_method,
)


def _ints(v: Any, n: int, what: str) -> tuple[int, ...]:
    """torch's int-or-sequence arguments: 3 -> (3, 3); (3,) -> (3, 3); [2, 3] -> (2, 3)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    t = tuple(int(i) for i in v)
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise FrontendError(f"{what} {tuple(t)} must have 1 or {n} entries")
    return t


def _batched(ctx: Ctx, input: Any, nd: int, what: str) -> Value:
    x = ctx.value(input)
    if len(x.shape) != nd + 2:
        raise FrontendError(f"{what} expects a batched (N, C, {nd} spatial) input, got shape {x.shape}")
    return x


# ---------------------------------------------------------------------------- layers with weights
def conv(ctx: Ctx, input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
         dilation: Any = 1, groups: int = 1) -> Value:
    w = ctx.const(weight, "weight")
    nd = w.tensor.ndim - 2
    if nd not in (1, 2, 3):
        raise FrontendError(f"weight of shape {tuple(w.tensor.shape)} is not a 1D, 2D or 3D conv weight")
    x = _batched(ctx, input, nd, f"conv{nd}d")
    b = None if bias is None else ctx.const(bias, "bias")
    pad = padding if isinstance(padding, str) else _ints(padding, nd, "padding")
    y = ctx.net.conv(x, int(w.tensor.shape[0]), tuple(w.tensor.shape[2:]), stride=_ints(stride, nd, "stride"),
                     padding=pad, dilation=_ints(dilation, nd, "dilation"), groups=int(groups),
                     bias=b is not None, name=ctx.name, ndim=nd)
    ctx.bind(y, "weight", w)
    ctx.bind(y, "bias", b)
    return y


def linear(ctx: Ctx, input: Any, weight: Any, bias: Any = None) -> Any:
    if isinstance(input, Permuted):  # ConvNeXt's Linear over channels-last features: a 1x1 conv
        return torch_layers.permuted_linear(ctx, input, weight, bias)
    x = ctx.value(input)
    w = ctx.const(weight, "weight")
    b = None if bias is None else ctx.const(bias, "bias")
    if len(x.shape) != 2:
        raise FrontendError(f"linear on a {len(x.shape)}D input {x.shape} is not supported; convc's linear "
                            f"takes (N, features): flatten before it")
    y = ctx.net.linear(x, int(w.tensor.shape[0]), bias=b is not None, name=ctx.name)
    ctx.bind(y, "weight", w)
    ctx.bind(y, "bias", b)
    return y


def batch_norm(ctx: Ctx, input: Any, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Value:
    x = ctx.value(input)
    if training is True:  # torch then normalizes with this batch's statistics, not the running ones
        raise FrontendError("batch_norm(training=True) normalizes with the statistics of each batch and "
                            "updates the running ones; convc imports inference graphs: call it with "
                            "training=False (or put the model in eval mode)")
    if running_mean is None or running_var is None:
        raise FrontendError("batch norm without running statistics (track_running_stats=False) uses batch "
                            "statistics; convc imports inference graphs, which need running_mean/var")
    y = ctx.net.batch_norm(x, eps=float(eps), name=ctx.name)
    channels = x.shape[1]
    if weight is None:  # affine=False: the identity scale and shift, under the layer's own names
        weight = Const(torch.ones(channels))
    if bias is None:
        bias = Const(torch.zeros(channels))
    for slot, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        ctx.bind(y, slot, ctx.const(t, slot))
    return y


def batch_norm_aten_order(ctx: Ctx, input: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any,
                          training: bool, momentum: float, eps: float, cudnn_enabled: bool = True) -> Value:
    """torch.batch_norm takes its operands in ATen's order, unlike F.batch_norm."""
    return batch_norm(ctx, input, running_mean, running_var, weight, bias, training, momentum, eps)


# ---------------------------------------------------------------------------- activations
def relu(ctx: Ctx, input: Any, inplace: bool = False) -> Value:
    return ctx.net.relu(ctx.value(input), name=ctx.name)


def leaky_relu(ctx: Ctx, input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Value:
    return ctx.net.leaky_relu(ctx.value(input), float(negative_slope), name=ctx.name)


def sigmoid(ctx: Ctx, input: Any) -> Value:
    return ctx.net.sigmoid(ctx.value(input), name=ctx.name)


def tanh(ctx: Ctx, input: Any) -> Value:
    return ctx.net.tanh(ctx.value(input), name=ctx.name)


def elu(ctx: Ctx, input: Any, alpha: float = 1.0, inplace: bool = False) -> Value:
    return ctx.net.elu(ctx.value(input), float(alpha), name=ctx.name)


def elu_aten_order(ctx: Ctx, input: Any, alpha: float = 1.0, scale: float = 1.0,
                   input_scale: float = 1.0) -> Value:
    if scale != 1 or input_scale != 1:
        raise FrontendError(f"elu with scale={scale}, input_scale={input_scale} (SELU-like) is not supported")
    return elu(ctx, input, alpha)


# ---------------------------------------------------------------------------- pooling
def max_pool(nd: int) -> Callable[..., Any]:
    def handler(ctx: Ctx, input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
        x = _batched(ctx, input, nd, f"max_pool{nd}d")
        k = _ints(kernel_size, nd, "kernel_size")
        if any(d != 1 for d in _ints(dilation, nd, "dilation")):
            raise FrontendError(f"dilation {dilation} is not supported: convc pools are not dilated")
        s = k if stride is None or stride == [] else _ints(stride, nd, "stride")
        y = ctx.net.pool("max", x, k, stride=s, padding=_ints(padding, nd, "padding"),
                         ceil_mode=bool(ceil_mode), name=ctx.name, ndim=nd)
        return (y, Unusable("max-pooling indices (convc does not compute them)")) if return_indices else y
    return handler


def avg_pool(nd: int) -> Callable[..., Any]:
    def handler(ctx: Ctx, input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                ceil_mode: bool = False, count_include_pad: bool = True,
                divisor_override: Any = None) -> Value:
        x = _batched(ctx, input, nd, f"avg_pool{nd}d")
        if divisor_override is not None:
            raise FrontendError(f"divisor_override={divisor_override} is not supported")
        k = _ints(kernel_size, nd, "kernel_size")
        s = k if stride is None or stride == [] else _ints(stride, nd, "stride")
        return ctx.net.pool("avg", x, k, stride=s, padding=_ints(padding, nd, "padding"),
                            ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                            name=ctx.name, ndim=nd)
    return handler


def adaptive_pool(kind: str, nd: int) -> Callable[..., Any]:
    """Output size 1 -> global pool; the input's own size -> nothing; an exact divisor -> a plain pool;
    any other size -> adaptive_avg_pool (averages only)."""
    def handler(ctx: Ctx, input: Any, output_size: Any, return_indices: bool = False) -> Any:
        x = _batched(ctx, input, nd, f"adaptive_{kind}_pool{nd}d")
        if return_indices:
            raise FrontendError("return_indices=True is not supported: convc does not compute indices")
        sizes = output_size if isinstance(output_size, Sequence) else (output_size,) * nd
        if len(sizes) == 1:
            sizes = tuple(sizes) * nd
        spatial = x.shape[2:]
        out = tuple(s if o is None else int(o) for o, s in zip(sizes, spatial))
        if out == spatial:
            return x
        if all(o == 1 for o in out):
            return getattr(ctx.net, f"global_{kind}_pool")(x, name=ctx.name)
        if all(s % o == 0 for s, o in zip(spatial, out)):
            k = tuple(s // o for s, o in zip(spatial, out))
            return ctx.net.pool(kind, x, k, stride=k, name=ctx.name, ndim=nd)
        if kind == "avg":
            return ctx.net.adaptive_avg_pool(x, out, name=ctx.name)
        raise FrontendError(f"adaptive max pooling of {spatial} to {out} is not supported; convc supports "
                            f"output size 1 (global pooling) or sizes that divide the input exactly")
    return handler


def local_response_norm(ctx: Ctx, input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Value:
    x = ctx.value(input)
    if len(x.shape) < 3:
        raise FrontendError(f"local response norm expects an (N, C, spatial...) input, got shape {x.shape}")
    return ctx.net.lrn(x, int(size), float(alpha), float(beta), float(k), name=ctx.name)


# ---------------------------------------------------------------------------- inference-time plumbing
def dropout(ctx: Ctx, input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Value:
    """Inference semantics: dropout is the identity (a rate of 1 included), kept as a node for the record."""
    x = ctx.value(input)
    return ctx.net.dropout(x, float(p), name=ctx.name) if 0 <= p < 1 else x


def softmax(ctx: Ctx, input: Any, dim: Any = None, _stacklevel: int = 3, dtype: Any = None) -> Value:
    x = ctx.value(input)
    if dtype is not None:
        raise FrontendError(f"softmax with dtype={dtype} is not supported")
    if dim is None:  # torch's legacy implicit dimension
        dim = 0 if len(x.shape) in (0, 1, 3) else 1
    return ctx.net.softmax(x, axis=int(dim) % len(x.shape), name=ctx.name)


def softmax_builtin(ctx: Ctx, input: Any, dim: int, dtype: Any = None) -> Value:
    return softmax(ctx, input, dim, dtype=dtype)


FUNCTIONS: dict[Any, Callable[..., Any]] = {
    torch.conv1d: conv, torch.conv2d: conv, torch.conv3d: conv, torch._C._nn.linear: linear,
    F.batch_norm: batch_norm, torch.batch_norm: batch_norm_aten_order,
    F.relu: relu, torch.relu: relu, torch.relu_: relu, F.leaky_relu: leaky_relu,
    torch._C._nn.leaky_relu: leaky_relu, F.sigmoid: sigmoid, torch.sigmoid: sigmoid, F.tanh: tanh,
    torch.tanh: tanh, F.elu: elu, torch._C._nn.elu: elu_aten_order,
    F.local_response_norm: local_response_norm,
    F.dropout: dropout, F.dropout1d: dropout, F.dropout2d: dropout, F.dropout3d: dropout,
    F.softmax: softmax, torch.softmax: softmax_builtin,
    torch.flatten: flatten, torch.reshape: reshape,
    operator.add: add, operator.iadd: add, torch.add: add,
    torch.cat: cat, torch.concat: cat, torch.concatenate: concatenate, torch.mean: mean,
    builtins.getattr: getattr_, operator.getitem: getitem, torch.ops.aten.sym_size.int: sym_size,
}
for _nd in (1, 2, 3):
    FUNCTIONS[getattr(F, f"max_pool{_nd}d")] = max_pool(_nd)
    FUNCTIONS[getattr(torch, f"max_pool{_nd}d")] = max_pool(_nd)
    FUNCTIONS[getattr(F, f"avg_pool{_nd}d")] = avg_pool(_nd)
    FUNCTIONS[getattr(F, f"adaptive_avg_pool{_nd}d")] = adaptive_pool("avg", _nd)
    FUNCTIONS[getattr(F, f"adaptive_max_pool{_nd}d")] = adaptive_pool("max", _nd)
FUNCTIONS[torch.adaptive_avg_pool1d] = adaptive_pool("avg", 1)
FUNCTIONS[torch._C._nn.adaptive_avg_pool2d] = adaptive_pool("avg", 2)
FUNCTIONS[torch._C._nn.adaptive_avg_pool3d] = adaptive_pool("avg", 3)

METHODS: dict[str, Callable[..., Any]] = {
    "relu": relu, "relu_": relu, "sigmoid": sigmoid, "sigmoid_": sigmoid, "tanh": tanh, "tanh_": tanh,
    "softmax": softmax_builtin, "flatten": flatten, "view": view_method, "reshape": view_method,
    "add": add, "add_": add, "__add__": add, "__iadd__": add, "mean": mean,
    "contiguous": identity, "clone": identity, "detach": identity,
    "size": size, "dim": dim,
}

# The layers of mobile and modern networks (and the layout rules ConvNeXt and ShuffleNet need).
FUNCTIONS.update(torch_layers.FUNCTIONS)
METHODS.update(torch_layers.METHODS)
