"""The fused epilogue of conv and linear: bias, then each step in order, in place on a fresh output.

    out = conv_gemm(...)                       # freshly allocated by the kernel, so it may be overwritten
    apply_epilogue(out, bias, (("relu",), ("add",)), [residual])

Only the array the kernel itself allocated is written; operands (inputs, residuals, parameters) never are,
because the interpreter may still hand them to later nodes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convc.errors import BackendError


def add_channel_bias(out: np.ndarray, bias: np.ndarray) -> None:
    """out[:, c, ...] += bias[c], in place."""
    out += bias.reshape((1, -1) + (1,) * (out.ndim - 2))


def relu_(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def leaky_relu_(x: np.ndarray, slope: float) -> np.ndarray:
    return np.multiply(x, slope, out=x, where=x < 0)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) never overflows: 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
    negative = x < 0
    np.abs(x, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    denominator = x + 1
    np.divide(1, denominator, out=x, where=~negative)
    np.divide(x, denominator, out=x, where=negative)
    return x


def tanh_(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def elu_(x: np.ndarray, alpha: float) -> np.ndarray:
    negative = x < 0
    np.expm1(x, out=x, where=negative)
    np.multiply(x, alpha, out=x, where=negative)
    return x


def apply_activation_(x: np.ndarray, kind: str, args: Sequence[float] = ()) -> np.ndarray:
    """Applies activation `kind` in place and returns `x`."""
    if kind == "relu":
        return relu_(x)
    if kind == "leaky_relu":
        return leaky_relu_(x, args[0])
    if kind == "sigmoid":
        return sigmoid_(x)
    if kind == "tanh":
        return tanh_(x)
    if kind == "elu":
        return elu_(x, args[0])
    raise BackendError(f"unknown activation {kind!r}")


def apply_epilogue(out: np.ndarray, bias: np.ndarray | None, steps: Sequence[tuple],
                   residuals: Sequence[np.ndarray]) -> np.ndarray:
    """Adds the per-channel bias, then runs the epilogue steps in order; each ("add",) consumes the
    next residual. Writes into `out`, which must be the kernel's own fresh array."""
    if bias is not None:
        add_channel_bias(out, bias)
    pending = iter(residuals)
    for step in steps:
        if step[0] == "add":
            np.add(out, next(pending), out=out)
        else:
            apply_activation_(out, step[0], step[1:])
    return out
