"""Inference batch norm, per-channel scale_shift and local response norm.

Parameter operands follow the schema's slot order: batch_norm reads (weight, bias, running_mean,
running_var), scale_shift reads (weight, bias).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from convc.backend import LoweringKey, registrar
from convc.interpreter import Kernel
from convc.ir import Node

from .pooling import needs_float32_on_cpu

KERNELS: dict[LoweringKey, Kernel] = {}
kernel = registrar(KERNELS)


def per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (C,) vector shaped (1, C, 1, ...) so it broadcasts over `like`'s channel axis."""
    return v.reshape((1, -1) + (1,) * (like.dim() - 2))


@kernel("batch_norm")
def batch_norm(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x, weight, bias, mean, var = args
    return F.batch_norm(x, mean, var, weight, bias, training=False, eps=node.attrs["eps"])


@kernel("scale_shift")
def scale_shift(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x, weight, bias = args
    return x * per_channel(weight, x) + per_channel(bias, x)


@kernel("channel_scale")
def channel_scale(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x, weight = args
    return x * per_channel(weight, x)


@kernel("layer_norm")
def layer_norm(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    """Over the channels: torch normalizes trailing axes, so move the channels last and back."""
    x, weight, bias = args
    y = F.layer_norm(x.movedim(1, -1), (x.shape[1],), weight, bias, node.attrs["eps"])
    return y.movedim(-1, 1)


@kernel("lrn")
def lrn(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    a = node.attrs
    x = args[0]
    upcast = needs_float32_on_cpu(x)
    y = F.local_response_norm(x.float() if upcast else x, a["size"], alpha=a["alpha"], beta=a["beta"],
                              k=a["k"])
    return y.to(x.dtype) if upcast else y
