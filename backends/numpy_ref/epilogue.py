"""The fused epilogue of conv and linear: bias, then each step in order, in place on a fresh output.

    out = conv_gemm(...)                       # freshly allocated by the kernel, so it may be overwritten
    apply_epilogue(out, bias, (("relu",), ("add",)), [residual])

Only the array the kernel itself allocated is written; operands (inputs, residuals, parameters) never are,
because the interpreter may still hand them to later nodes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from convc.backends.numpy_ref import epilogue_jit
from convc.backends.numpy_ref.exp_jit import ERFC_A as _ERFC_A, ERFC_P as _ERFC_P
from convc.errors import BackendError


def relu_(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def leaky_relu_(x: np.ndarray, slope: float) -> np.ndarray:
    return np.multiply(x, slope, out=x, where=x < 0)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in four passes. exp(-x) overflows to inf for very negative x, which gives the
    right limit 0 (the caller, apply_activation_, silences the overflow warning); NaN stays NaN."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1
    return np.reciprocal(x, out=x)


def tanh_(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def elu_(x: np.ndarray, alpha: float) -> np.ndarray:
    negative = x < 0
    np.expm1(x, out=x, where=negative)
    np.multiply(x, alpha, out=x, where=negative)
    return x


def clip_(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(x, lo, hi, out=x)  # NaN stays NaN, as in torch.clamp


def hardsigmoid_(x: np.ndarray) -> np.ndarray:
    x += 3
    np.clip(x, 0, 6, out=x)
    x /= 6
    return x


def hardswish_(x: np.ndarray) -> np.ndarray:
    gate = hardsigmoid_(x.copy())
    x *= gate
    return x


def silu_(x: np.ndarray) -> np.ndarray:
    """x / (1 + exp(-x)): x * sigmoid(x) without a second pass for the product. Very negative x gives
    x / inf = -0, the limit; x = -inf gives NaN, as torch's x * sigmoid(x) does."""
    denominator = np.negative(x)
    np.exp(denominator, out=denominator)
    denominator += 1
    x /= denominator
    return x


# math.erf is correctly rounded in float64; NumPy has no erf of its own, so the exact GELU applies it
# element by element in float64 (slow: about 100 ns an element). float32 needs no such accuracy and
# takes a closed form instead (about 50x faster; ConvNeXt's GELUs were most of its forward).
_ERF = np.frompyfunc(math.erf, 1, 1)

# Abramowitz & Stegun 7.1.26: erfc(z) ~ t (a1 + t (a2 + ... + t a5)) exp(-z^2), t = 1 / (1 + p z), for
# z >= 0, absolute error under 1.5e-7: below float32's rounding of GELU's output scale (p and the a's are
# exp_jit's ERFC_P and ERFC_A, which the compiled GELU uses too).


def normal_cdf_float32(x: np.ndarray) -> np.ndarray:
    """Phi(x) = erfc(-x / sqrt(2)) / 2 in float32 from the closed form above, written without the
    cancellation of 1 + erf(x) for negative x. NaN stays NaN; Phi(-inf) = 0, Phi(inf) = 1.

        normal_cdf_float32(np.float32([0.0, -1.0]))  # ~[0.5, 0.158655]
    """
    t = np.abs(x)
    t *= np.float32(_ERFC_P / math.sqrt(2.0))
    t += 1
    np.divide(1, t, out=t)  # t(|x| / sqrt(2))
    tail = t * np.float32(_ERFC_A[0] / 2)  # the coefficients halved: tail = erfc(|x| / sqrt(2)) / 2
    for a in _ERFC_A[1:]:
        tail += np.float32(a / 2)
        tail *= t
    gauss = np.multiply(x, x, out=t)
    gauss *= np.float32(-0.5)
    np.exp(gauss, out=gauss)
    tail *= gauss  # Phi(-|x|)
    # Phi(x) = tail + [x >= 0] * (1 - 2 tail): exactly the tail for x < 0, 1 - tail for x >= 0, with
    # no masked ufunc (NumPy's where= loop took 70% of the whole function, 2026-12-01).
    flip = np.multiply(tail, np.float32(-2), out=gauss)
    flip += 1
    flip *= np.greater_equal(x, 0).view(np.uint8)
    tail += flip
    return tail


def gelu_(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2))): exact in float64, the closed form in float32."""
    if x.dtype == np.float32:
        x *= normal_cdf_float32(x)
        return x
    phi = _ERF(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64)
    phi += 1
    phi *= 0.5
    x *= phi.astype(x.dtype)
    return x


def gelu_tanh_(x: np.ndarray) -> np.ndarray:
    """x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))), torch's approximate="tanh"."""
    inner = x * x
    inner *= 0.044715 * x
    inner += x
    inner *= math.sqrt(2.0 / math.pi)
    np.tanh(inner, out=inner)
    inner += 1
    inner *= 0.5
    x *= inner
    return x


_UNARY = {"relu": relu_, "sigmoid": sigmoid_, "tanh": tanh_, "hardswish": hardswish_,
          "hardsigmoid": hardsigmoid_, "silu": silu_, "gelu": gelu_, "gelu_tanh": gelu_tanh_}


def apply_activation_(x: np.ndarray, kind: str, args: Sequence[float] = ()) -> np.ndarray:
    """Applies activation `kind` (an epilogue step's name) in place and returns `x`."""
    if kind in _UNARY:
        with np.errstate(invalid="ignore", over="ignore"):  # -inf * 0 is NaN in torch as well
            return _UNARY[kind](x)
    if kind == "clip":
        return clip_(x, args[0], args[1])
    if kind == "leaky_relu":
        return leaky_relu_(x, args[0])
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
    the next block: one pass over memory in place of one per step. With numba on (jit.enabled()) a
    C-contiguous (or channels-last contiguous) float32/float64 output goes through epilogue_jit instead:
    every step in one compiled pass over L1-sized blocks."""
    if bias is None and not steps:
        return out
    if epilogue_jit.applicable(out, *residuals):
        return epilogue_jit.run_epilogue(out, bias, steps, residuals)
    if out.ndim >= 3:  # a channels-last array seen as NCHW (depthwise rows): (positions, C) rows
        rows = [np.moveaxis(a, 1, -1) for a in (out, *residuals)]
        if epilogue_jit.applicable(rows[0], *rows[1:]):
            epilogue_jit.run_epilogue(rows[0].reshape(-1, out.shape[1]), bias, steps,
                                      [r.reshape(-1, out.shape[1]) for r in rows[1:]])
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
