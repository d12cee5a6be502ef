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


# Outputs larger than this go block by block: 256 KiB of float32 per block, so a block stays in the L2
# cache while the bias, the activations and the residual adds all run over it (one trip to memory, not
# one per step). Measured (1 thread, shared EPYC VM): a 12.8 MB VGG conv1_2 output's bias + ReLU took
# 1.9 ms blocked against 3.5 ms in whole-tensor passes; outputs of 3 MB or less, which the last-level
# cache holds anyway, were 10-25% faster whole (fewer NumPy calls), hence the threshold.
EPILOGUE_BLOCKED_ABOVE_BYTES = 4 << 20
EPILOGUE_BLOCK = 1 << 16


def _run_steps(out: np.ndarray, bias: np.ndarray | None, steps: Sequence[tuple],
               residuals: Sequence[np.ndarray]) -> None:
    if bias is not None:
        np.add(out, bias, out=out)
    pending = iter(residuals)
    for step in steps:
        if step[0] == "add":
            np.add(out, next(pending), out=out)
        else:
            apply_activation_(out, step[0], step[1:])


def apply_epilogue(out: np.ndarray, bias: np.ndarray | None, steps: Sequence[tuple],
                   residuals: Sequence[np.ndarray]) -> np.ndarray:
    """Adds the per-channel bias, then runs the epilogue steps in order; each ("add",) consumes the
    next residual. Writes into `out`, which must be the kernel's own fresh array.

    A large output goes block by block over its (image, channel) rows, every step on one block before
    the next block: one pass over memory in place of one per step."""
    if bias is None and not steps:
        return out
    rows = out.shape[0] * out.shape[1] if out.ndim >= 2 else 1
    per_row = out.size // max(rows, 1)
    if out.nbytes <= EPILOGUE_BLOCKED_ABOVE_BYTES or not out.flags.c_contiguous or out.ndim < 2:
        _run_steps(out, None if bias is None else bias.reshape((1, -1) + (1,) * (out.ndim - 2)), steps,
                   residuals)
        return out
    flat = out.reshape(rows, per_row)
    bias_rows = None if bias is None else np.tile(bias, out.shape[0]).reshape(rows, 1)
    residual_rows = [np.reshape(r, (rows, per_row)) for r in residuals]
    block = max(1, EPILOGUE_BLOCK // per_row)
    for start in range(0, rows, block):
        part = slice(start, start + block)
        _run_steps(flat[part], None if bias_rows is None else bias_rows[part], steps,
                   [r[part] for r in residual_rows])
    return out
