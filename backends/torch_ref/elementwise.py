"""Activations, maxout, softmax, mul and the shape ops (add, bias_add, concat, flatten, dropout, identity,
channel_shuffle, slice)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from convc.backend import LoweringKey, registrar
from convc.interpreter import Kernel
from convc.ir import Node

KERNELS: dict[LoweringKey, Kernel] = {}
kernel = registrar(KERNELS)



@kernel("relu")
def relu(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.relu(args[0])


@kernel("leaky_relu")
def leaky_relu(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.leaky_relu(args[0], node.attrs["negative_slope"])


@kernel("sigmoid")
def sigmoid(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.sigmoid(args[0])


@kernel("tanh")
def tanh(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.tanh(args[0])


@kernel("elu")
def elu(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.elu(args[0], node.attrs["alpha"])


@kernel("clip")
def clip(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.clamp(args[0], node.attrs["min"], node.attrs["max"])


@kernel("hardswish")
def hardswish(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.hardswish(args[0])


@kernel("hardsigmoid")
def hardsigmoid(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.hardsigmoid(args[0])


@kernel("silu")
def silu(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.silu(args[0])


@kernel("gelu")
def gelu(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.gelu(args[0], approximate=node.attrs["approximate"])


@kernel("mul")
def mul(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0] * args[1]


@kernel("channel_shuffle")
def channel_shuffle(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    g = node.attrs["groups"]
    return x.unflatten(1, (g, x.shape[1] // g)).transpose(1, 2).flatten(1, 2)


@kernel("slice")
def slice_(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    a = node.attrs
    return args[0].narrow(a["axis"], a["start"], a["stop"] - a["start"])


@kernel("dropout")  # inference: dropout is the identity
@kernel("identity")
def identity(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0]


@kernel("maxout")
def maxout(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    """out[:, c] = max(x[:, c*k:(c+1)*k]): split the channel axis into (C/k, k) and reduce the k."""
    x = args[0]
    k = node.attrs["k"]
    return x.unflatten(1, (x.shape[1] // k, k)).amax(dim=2)


@kernel("softmax")
def softmax(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return F.softmax(args[0], dim=node.attrs["axis"])


@kernel("add")
def add(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0] + args[1]


@kernel("bias_add")
def bias_add(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x, bias = args  # bias has x's per-example shape x.shape[1:], so it broadcasts over the batch
    return x + bias


@kernel("concat")
def concat(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(args, dim=node.attrs["axis"])


@kernel("flatten")
def flatten(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    # flatten follows the logical (N, C, H, W) order whatever the memory format, as the IR means it.
    # reshape, not torch.flatten: the IR lets flatten(start_dim=1) turn a 1-D tensor into (N, 1).
    return args[0].reshape(node.type.shape)
