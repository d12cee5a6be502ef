"""torch.nn modules -> the functional handlers, with parameters named by the module's state_dict keys.

A handler takes (ctx, module, path, *args, **kwargs): `path` is the module's dotted name in the model
('features.0'), so a Conv2d at 'features.0' gives parameters 'features.0.weight' and 'features.0.bias'.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from convc.dsl import Value
from convc.frontends import torch_functions as tf
from convc.frontends import torch_layers
from convc.frontends.building import FrontendError
from convc.frontends.torch_context import Const, Ctx


def _param(module: nn.Module, path: str, attr: str) -> Const | None:
    t = getattr(module, attr, None)
    return None if t is None else Const(t.detach(), f"{path}.{attr}" if path else attr)


def conv(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    if m.padding_mode != "zeros":
        raise FrontendError(f"padding_mode={m.padding_mode!r} is not supported; convc pads with zeros")
    return tf.conv(ctx, input, _param(m, path, "weight"), _param(m, path, "bias"), m.stride, m.padding,
                   m.dilation, m.groups)


def linear(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.linear(ctx, input, _param(m, path, "weight"), _param(m, path, "bias"))


def batch_norm(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    if not m.track_running_stats or m.running_mean is None:
        raise FrontendError("track_running_stats=False normalizes with batch statistics; convc imports "
                            "inference graphs, which need running_mean and running_var")
    x = ctx.value(input)
    expected = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}.get(type(m), ())
    if expected and len(x.shape) not in expected:
        raise FrontendError(f"{type(m).__name__} expects a {' or '.join(map(str, expected))}D input, "
                            f"got shape {x.shape}")
    return tf.batch_norm(ctx, x, _param(m, path, "running_mean"), _param(m, path, "running_var"),
                         _param(m, path, "weight"), _param(m, path, "bias"), eps=m.eps)


def relu(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.relu(ctx, input)


def leaky_relu(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.leaky_relu(ctx, input, m.negative_slope)


def sigmoid(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.sigmoid(ctx, input)


def tanh(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.tanh(ctx, input)


def elu(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.elu(ctx, input, m.alpha)


def max_pool(nd: int) -> Callable[..., Any]:
    def handler(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Any:
        return tf.max_pool(nd)(ctx, input, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode,
                               m.return_indices)
    return handler


def avg_pool(nd: int) -> Callable[..., Any]:
    def handler(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
        return tf.avg_pool(nd)(ctx, input, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                               m.count_include_pad, getattr(m, "divisor_override", None))
    return handler


def adaptive_pool(kind: str, nd: int) -> Callable[..., Any]:
    def handler(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Any:
        return tf.adaptive_pool(kind, nd)(ctx, input, m.output_size, getattr(m, "return_indices", False))
    return handler


def local_response_norm(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.local_response_norm(ctx, input, m.size, m.alpha, m.beta, m.k)


def flatten(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.flatten(ctx, input, m.start_dim, m.end_dim)


def dropout(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.dropout(ctx, input, m.p, training=False)


def softmax(ctx: Ctx, m: nn.Module, path: str, input: Any) -> Value:
    return tf.softmax(ctx, input, m.dim)


def identity(ctx: Ctx, m: nn.Module, path: str, input: Any, *args: Any, **kwargs: Any) -> Value:
    return ctx.value(input)


MODULES: dict[type, Callable[..., Any]] = {
    nn.Conv1d: conv, nn.Conv2d: conv, nn.Conv3d: conv, nn.Linear: linear,
    nn.BatchNorm1d: batch_norm, nn.BatchNorm2d: batch_norm, nn.BatchNorm3d: batch_norm,
    nn.ReLU: relu, nn.LeakyReLU: leaky_relu, nn.Sigmoid: sigmoid, nn.Tanh: tanh, nn.ELU: elu,
    nn.LocalResponseNorm: local_response_norm, nn.Flatten: flatten, nn.Softmax: softmax,
    nn.Dropout: dropout, nn.Dropout1d: dropout, nn.Dropout2d: dropout, nn.Dropout3d: dropout,
    nn.Identity: identity,
}
for _nd in (1, 2, 3):
    MODULES[getattr(nn, f"MaxPool{_nd}d")] = max_pool(_nd)
    MODULES[getattr(nn, f"AvgPool{_nd}d")] = avg_pool(_nd)
    MODULES[getattr(nn, f"AdaptiveAvgPool{_nd}d")] = adaptive_pool("avg", _nd)
    MODULES[getattr(nn, f"AdaptiveMaxPool{_nd}d")] = adaptive_pool("max", _nd)

MODULES.update(torch_layers.MODULES)
