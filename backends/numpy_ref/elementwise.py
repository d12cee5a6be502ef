"""Elementwise and shape ops: activations, softmax, maxout, add, mul, concat, bias_add, flatten, dropout,
identity. Each returns a new array (or a view) and leaves its operands untouched.

With numba on, activations, add and squeeze-excitation's per-channel mul run as one compiled pass into
the new array (epilogue_jit.fresh): NumPy's versions copy first or run one pass per operation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from convc.backends.numpy_ref import epilogue_jit
from convc.backends.numpy_ref.epilogue import apply_activation_

from convc.ir import Node


def _activation(kind: str, arg_attr: str | None = None) -> Callable[[Node, list[Any]], np.ndarray]:
    """The kernel of activation op `kind`, whose one parameter (if any) is attribute `arg_attr`."""
    def kernel(node: Node, args: list[Any]) -> np.ndarray:
        params = (node.attrs[arg_attr],) if arg_attr else ()
        compiled = epilogue_jit.fresh(args[0], ((kind, *params),))
        return compiled if compiled is not None else apply_activation_(args[0].copy(), kind, params)

    kernel.__name__ = kind
    kernel.__doc__ = f"{kind} on a copy of the input"
    return kernel


def softmax(node: Node, args: list[Any]) -> np.ndarray:
    """exp(x - max) / sum: subtracting the max keeps exp from overflowing."""
    axis = node.attrs["axis"]
    out = args[0] - args[0].max(axis=axis, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)
    return out


def maxout(node: Node, args: list[Any]) -> np.ndarray:
    """out[:, c] = max(x[:, c*k : (c+1)*k])."""
    x = args[0]
    k = node.attrs["k"]
    return x.reshape((x.shape[0], x.shape[1] // k, k) + x.shape[2:]).max(axis=2)


def relu(node: Node, args: list[Any]) -> np.ndarray:
    """max(x, 0) into a fresh array in one pass (not a copy, then a pass over the copy); NaN stays NaN.
    Compiled where it can: np.maximum against a scalar runs 3x slower than a copy (2026-12-01)."""
    compiled = epilogue_jit.fresh(args[0], (("relu",),))
    return compiled if compiled is not None else np.maximum(args[0], 0)


def clip(node: Node, args: list[Any]) -> np.ndarray:
    """min(max(x, lo), hi) into a fresh array in one pass; NaN stays NaN, as in torch.clamp."""
    compiled = epilogue_jit.fresh(args[0], (("clip", node.attrs["min"], node.attrs["max"]),))
    return compiled if compiled is not None else np.clip(args[0], node.attrs["min"], node.attrs["max"])


def gelu(node: Node, args: list[Any]) -> np.ndarray:
    kind = "gelu_tanh" if node.attrs["approximate"] == "tanh" else "gelu"
    compiled = epilogue_jit.fresh(args[0], ((kind,),))
    return compiled if compiled is not None else apply_activation_(args[0].copy(), kind)


def mul(node: Node, args: list[Any]) -> np.ndarray:
    """a * b, one of them broadcast over the other's size-1 axes (squeeze-excitation's (N, C, 1, 1))."""
    a, b = args
    for x, gate in ((a, b), (b, a)):
        per_row = x.ndim >= 2 and gate.ndim == x.ndim and gate.shape[:2] == x.shape[:2]
        if per_row and gate.size == x.shape[0] * x.shape[1]:
            compiled = epilogue_jit.fresh(x, scale=gate.reshape(-1))  # one scale per (image, channel)
            if compiled is not None:
                return compiled
    return np.multiply(a, b)


def add(node: Node, args: list[Any]) -> np.ndarray:
    a, b = args
    compiled = epilogue_jit.fresh(a, (("add",),), [b]) if a.shape == b.shape else None
    return compiled if compiled is not None else np.add(a, b)


def concat(node: Node, args: list[Any]) -> np.ndarray:
    return np.concatenate(args, axis=node.attrs["axis"])


def bias_add(node: Node, args: list[Any]) -> np.ndarray:
    """x + bias, where bias has the shape of one example (x.shape[1:])."""
    x, bias = args
    return x + bias[np.newaxis]


def flatten(node: Node, args: list[Any]) -> np.ndarray:
    return args[0].reshape(node.type.shape)


def passthrough(node: Node, args: list[Any]) -> np.ndarray:
    """dropout at inference, and identity: the input itself (no kernel ever writes its operands)."""
    return args[0]


KERNELS = {
    ("relu", None): relu,
    ("leaky_relu", None): _activation("leaky_relu", "negative_slope"),
    ("sigmoid", None): _activation("sigmoid"),
    ("tanh", None): _activation("tanh"),
    ("elu", None): _activation("elu", "alpha"),
    ("hardswish", None): _activation("hardswish"),
    ("hardsigmoid", None): _activation("hardsigmoid"),
    ("silu", None): _activation("silu"),
    ("clip", None): clip,
    ("gelu", None): gelu,
    ("mul", None): mul,
    ("softmax", None): softmax,
    ("maxout", None): maxout,
    ("add", None): add,
    ("concat", None): concat,
    ("bias_add", None): bias_add,
    ("flatten", None): flatten,
    ("dropout", None): passthrough,
    ("identity", None): passthrough,
}
