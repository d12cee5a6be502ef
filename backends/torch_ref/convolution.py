"""conv1d/2d/3d and linear, each with its fused epilogue, as torch.nn.functional calls.

A node's operands are `x, residual_1, ..., residual_r, weight[, bias]`; each ("add",) epilogue step
consumes the next residual, in order. The conv `algo` attribute is ignored (see table.TorchBackend).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from convc.backend import LoweringKey
from convc.interpreter import Kernel
from convc.ir import Node
from convc.ops import CONV_OPS, epilogue_extra_inputs, input_scale_inputs


ConvFn = Callable[..., torch.Tensor]
# Epilogue steps of the mobile-net activations, shared with their standalone kernels (elementwise.py).
MODERN_ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "clip": torch.clamp, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "silu": F.silu,
    "gelu": F.gelu, "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
}
CONV_FUNCTIONS: dict[int, ConvFn] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def apply_epilogue(y: torch.Tensor, steps: tuple[tuple[Any, ...], ...],
                   residuals: Sequence[torch.Tensor]) -> torch.Tensor:
    """Applies the epilogue steps in order; the i-th ("add",) adds residuals[i]."""
    used = 0
    for step in steps:
        kind = step[0]
        if kind == "add":
            y = y + residuals[used]
            used += 1
        elif kind == "relu":
            y = F.relu(y)
        elif kind == "leaky_relu":
            y = F.leaky_relu(y, step[1])
        elif kind == "sigmoid":
            y = torch.sigmoid(y)
        elif kind == "tanh":
            y = torch.tanh(y)
        elif kind == "elu":
            y = F.elu(y, step[1])
        elif kind in MODERN_ACTIVATIONS:
            y = MODERN_ACTIVATIONS[kind](y, *step[1:])
        else:  # the verifier rejects unknown steps, so reaching this is a convc bug
            raise AssertionError(f"unknown epilogue step {step!r}")
    return y


def split_layer_operands(node: Node, args: list[torch.Tensor]
                         ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
    """(x, residuals, weight, bias or None) from a conv/linear node's operands; a conv's input scale
    (attrs["input_scale"]) is applied to x here."""
    n_residuals = epilogue_extra_inputs(node.attrs)
    n_act = 1 + n_residuals + input_scale_inputs(node.attrs)
    x, residuals = args[0], args[1:1 + n_residuals]
    if input_scale_inputs(node.attrs):
        x = x * args[n_act - 1]
    weight = args[n_act]
    bias = args[n_act + 1] if node.attrs["bias"] else None
    return x, residuals, weight, bias


def torch_pad_order(padding: tuple[tuple[int, int], ...]) -> list[int]:
    """((lo_0, hi_0), ..., (lo_n, hi_n)) -> [lo_n, hi_n, ..., lo_0, hi_0]: F.pad starts at the last axis."""
    return [p for lo_hi in reversed(padding) for p in lo_hi]


def convolution(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    a = node.attrs
    x, residuals, weight, bias = split_layer_operands(node, args)
    pads = a["padding"]
    if all(lo == hi for lo, hi in pads):
        padding: tuple[int, ...] | int = tuple(lo for lo, _ in pads)
    else:
        # torch convs take only symmetric padding; "same" with an even kernel or stride needs one more
        # pixel on the high side, so pad explicitly (zeros, like the conv's own padding) first.
        x = F.pad(x, torch_pad_order(pads))
        padding = 0
    conv = CONV_FUNCTIONS[len(a["kernel"])]
    y = conv(x, weight, bias, a["stride"], padding, a["dilation"], a["groups"])
    return apply_epilogue(y, a["epilogue"], residuals)


def linear(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x, residuals, weight, bias = split_layer_operands(node, args)
    return apply_epilogue(F.linear(x, weight, bias), node.attrs["epilogue"], residuals)


KERNELS: dict[LoweringKey, Kernel] = {
    **{(op, None): convolution for op in CONV_OPS},
    ("linear", None): linear,
}
