"""The fused epilogue in one compiled pass: per-row scale and shift, then every step, block by block.

NumPy's epilogue (epilogue.py) makes one trip over the output per step: bias, ReLU, residual add, and
SiLU's four passes. Here numba runs all of them over one L1-sized block of the output (2048 elements)
before moving to the next block, each step a plain loop that LLVM vectorizes, so the output crosses
memory once. The steps travel as an int opcode array and their parameters as a small array of the
output's dtype, so numba compiles one kernel per dtype (float32, float64) whatever the chain.

    out = conv_gemm(...)                                      # (N, C, H, W), C-contiguous, fresh
    if applicable(out, bias, residuals):
        run_epilogue(out, bias, (("relu",), ("add",)), [residual])      # in place

The same kernel also writes a fresh output from a separate source (`source` != `out`), with a scale
per row as well as a shift: batch norm's scale-shift, squeeze-excitation's x * s[n, c], standalone
activations.

Numerics: bias, ReLU, clip, leaky ReLU and residual adds give the NumPy path's bits; float64 sigmoid,
SiLU and GELU use math.exp / math.erf; float32 uses exp_jit's vectorized exp (within 1 float32 epsilon)
and GELU the same A&S closed form as the NumPy path. NaN and inf propagate as torch's (ReLU keeps NaN,
silu(-inf) = NaN, sigmoid(-inf) = 0).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from convc.backends.numpy_ref import jit
from convc.backends.numpy_ref.exp_jit import normal_cdf32, sigmoid32, silu32

# opcodes of the steps; ADD0 / ADD1 read the first / second residual of the call
RELU, ADD0, ADD1, LEAKY_RELU, SIGMOID, TANH, ELU, CLIP, HARDSWISH, HARDSIGMOID, SILU, GELU, GELU_TANH = (
    range(13))
OPCODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH, "elu": ELU,
           "clip": CLIP, "hardswish": HARDSWISH, "hardsigmoid": HARDSIGMOID, "silu": SILU, "gelu": GELU,
           "gelu_tanh": GELU_TANH}
BLOCK = 2048  # elements: 8 KiB of float32, so a block and its residuals stay in the L1 cache
_SQRT_HALF = math.sqrt(0.5)
_GELU_TANH_2K = 2 * math.sqrt(2 / math.pi)  # 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u))


@jit.inline
def _affine_row(into, into_from, scale, shift):  # type: ignore[no-untyped-def]
    """into = into_from * scale[0] + shift[0], either of them absent when empty."""
    if scale.size and shift.size:
        a, b = scale[0], shift[0]
        for k in range(into.size):
            into[k] = into_from[k] * a + b
    elif scale.size:
        a = scale[0]
        for k in range(into.size):
            into[k] = into_from[k] * a
    elif shift.size:
        b = shift[0]
        for k in range(into.size):
            into[k] = into_from[k] + b
    else:
        for k in range(into.size):
            into[k] = into_from[k]


@jit.inline
def _affine_elements(into, into_from, scale, shift):  # type: ignore[no-untyped-def]
    """into = into_from * scale + shift elementwise, either of them absent when empty."""
    if scale.size and shift.size:
        for k in range(into.size):
            into[k] = into_from[k] * scale[k] + shift[k]
    elif scale.size:
        for k in range(into.size):
            into[k] = into_from[k] * scale[k]
    elif shift.size:
        for k in range(into.size):
            into[k] = into_from[k] + shift[k]
    else:
        for k in range(into.size):
            into[k] = into_from[k]


@jit.kernel
def _load(source, out, scale, shift, start, stop, per_row):  # type: ignore[no-untyped-def]
    """out[i] = source[i] * scale[j] + shift[j] over [start, stop): j = (i // per_row) % len, one value
    per row of per_row elements (per_row == 1: one per element, as a linear layer's bias). An empty
    scale or shift is skipped. An empty source means out itself (in place)."""
    period = per_row * max(scale.size, shift.size)  # the parameters repeat after this many elements
    i = start
    while i < stop:
        if period == 0:
            end = stop
        elif per_row == 1:  # up to the end of this round of parameters
            end = min(stop, (i // period + 1) * period)
        else:  # up to the end of this row
            end = min(stop, (i // per_row + 1) * per_row)
        j = (i % period) // per_row if period else 0
        into = out[i:end]  # indexed from 0: the loops vectorize
        # in place (empty source) the loops read and write one array: passed as two, LLVM's overlap
        # check at run time would find them equal and take its scalar loop (4x slower, measured)
        if per_row == 1 and source.size == 0:
            _affine_elements(into, into, scale[j:j + into.size], shift[j:j + into.size])
        elif per_row == 1:
            _affine_elements(into, source[i:end], scale[j:j + into.size], shift[j:j + into.size])
        elif source.size == 0:
            _affine_row(into, into, scale[j:j + 1], shift[j:j + 1])
        else:
            _affine_row(into, source[i:end], scale[j:j + 1], shift[j:j + 1])
        i = end


@jit.kernel
def apply_steps(block, added0, added1, codes, params, single):  # type: ignore[no-untyped-def]
    """The steps `codes` (parameters in rows 1.. of `params`, row 0 holding (0, 1)) in place on `block`,
    one vectorized loop per step; ADD0 / ADD1 add `added0` / `added1` (of block's size, else empty).
    `single` selects the float32 exp. Other compiled kernels call it on their own output blocks:

        codes, params = encode(steps, out.dtype)
        apply_steps(out_rows, residual_rows, empty, codes, params, out.dtype == np.float32)
    """
    zero, one = params[0, 0], params[0, 1]
    three, six = one * 3, one * 6
    for s in range(codes.size):
        code, lo, hi = codes[s], params[s + 1, 0], params[s + 1, 1]
        if code == RELU:
            for k in range(block.size):
                v = block[k]
                block[k] = v if not v < zero else zero  # NaN is not < 0: it stays
        elif code == ADD0:
            for k in range(block.size):
                block[k] += added0[k]
        elif code == ADD1:
            for k in range(block.size):
                block[k] += added1[k]
        elif code == LEAKY_RELU:
            for k in range(block.size):
                v = block[k]
                block[k] = v * lo if v < zero else v
        elif code == CLIP:  # torch.clamp: max first, then min; a select keeps NaN (min/max may not)
            for k in range(block.size):
                v = block[k]
                v = lo if v < lo else v  # noqa: FURB136
                block[k] = hi if v > hi else v  # noqa: FURB136
        elif code == HARDSIGMOID or code == HARDSWISH:
            for k in range(block.size):
                v = block[k]
                gate = v + three
                gate = zero if gate < zero else gate  # noqa: FURB136
                gate = (six if gate > six else gate) / six  # noqa: FURB136
                block[k] = gate if code == HARDSIGMOID else v * gate
        elif code == SIGMOID and single:
            for k in range(block.size):
                block[k] = sigmoid32(block[k])
        elif code == SIGMOID:
            for k in range(block.size):
                block[k] = one / (one + math.exp(-block[k]))
        elif code == SILU and single:
            for k in range(block.size):
                block[k] = silu32(block[k])
        elif code == SILU:
            for k in range(block.size):
                v = block[k]
                block[k] = v / (one + math.exp(-v))
        elif code == GELU and single:
            for k in range(block.size):
                v = block[k]
                block[k] = v * normal_cdf32(v)
        elif code == GELU:
            for k in range(block.size):
                v = block[k]
                block[k] = v * ((math.erf(v * _SQRT_HALF) + 1.0) * 0.5)
        elif code == GELU_TANH and single:
            for k in range(block.size):
                v = block[k]
                block[k] = v * sigmoid32(lo * (v + hi * v * v * v))
        elif code == GELU_TANH:
            for k in range(block.size):
                v = block[k]
                block[k] = v / (one + math.exp(-lo * (v + hi * v * v * v)))
        elif code == TANH:
            for k in range(block.size):
                block[k] = math.tanh(block[k])
        elif code == ELU:
            for k in range(block.size):
                v = block[k]
                block[k] = lo * math.expm1(v) if v < zero else v


@jit.kernel
def _epilogue(source, out, scale, shift, load,  # type: ignore[no-untyped-def]
              residual0, residual1, codes, params, per_row, single):
    """apply_steps over `out` block by block; `load` first runs _load from `source` into the block."""
    for start in range(0, out.size, BLOCK):
        stop = min(out.size, start + BLOCK)
        if load:
            _load(source, out, scale, shift, start, stop, per_row)
        # views indexed from 0 in apply_steps' loops: numba then knows no index is negative and the
        # loops vectorize (out[start + k] would check for wraparound at every element)
        apply_steps(out[start:stop], residual0[start:stop], residual1[start:stop], codes, params, single)


def applicable(out: np.ndarray, *operands: np.ndarray | None) -> bool:
    """The compiled path can run: numba on, `out` float32/float64, C-contiguous, and every operand
    (residuals) of its shape and dtype and C-contiguous too; None operands are ignored."""
    if not jit.enabled_for(out.dtype) or not out.flags.c_contiguous or out.size == 0:
        return False
    return all(r is None or (r.shape == out.shape and r.dtype == out.dtype and r.flags.c_contiguous)
               for r in operands)


@functools.lru_cache(maxsize=512)
def encode(steps: tuple, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The opcodes and the parameter rows of `steps` (cached: a model repeats a few chains)."""
    codes = np.empty(len(steps), np.int64)
    params = np.zeros((len(steps) + 1, 2), dtype)
    params[0] = (0, 1)
    adds = 0
    for s, step in enumerate(steps):
        if step[0] == "add":
            codes[s], adds = ADD0 + adds, adds + 1
            continue
        codes[s] = OPCODES[step[0]]
        if step[0] == "gelu_tanh":
            params[s + 1] = (_GELU_TANH_2K, 0.044715)
        elif len(step) > 1:
            params[s + 1, :len(step) - 1] = step[1:]
    codes.flags.writeable = params.flags.writeable = False
    return codes, params


_EMPTY = {dtype: np.empty(0, dtype) for dtype in jit.DTYPES}

# A conv kernel that runs apply_steps on its output planes takes this many residuals (added0, added1).
KERNEL_RESIDUALS = 2


def kernel_epilogue(steps: tuple, residuals: Sequence[np.ndarray], dtype: np.dtype
                    ) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a compiled conv kernel needs to run `steps` in its store: (fused, codes, params, res0, res1).
    fused is False when there are more residuals than the kernel takes: then codes is empty and the
    caller applies the whole epilogue afterwards. res0 / res1: residuals flattened, or empty."""
    fused = len(residuals) <= KERNEL_RESIDUALS
    codes, params = encode(steps if fused else (), dtype)
    flat = [np.ascontiguousarray(r, dtype).reshape(-1) for r in residuals] if fused else []
    empty = np.empty(0, dtype)
    res0, res1 = (flat + [empty, empty])[:KERNEL_RESIDUALS]
    return fused, codes, params, res0, res1


def _per_row(values: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    if values is None:
        return _EMPTY[dtype]
    return np.ascontiguousarray(values, dtype).reshape(-1)


def run_epilogue(out: np.ndarray, bias: np.ndarray | None, steps: Sequence[tuple],
                 residuals: Sequence[np.ndarray], *, source: np.ndarray | None = None,
                 scale: np.ndarray | None = None) -> np.ndarray:
    """out = steps(source * scale + bias) (source defaults to out: in place), for out of shape
    (N, C, ...): `scale` and `bias` hold one value per channel (C) or per (image, channel) row (N * C),
    each ("add",) step adds the next residual. The caller checked `applicable`."""
    per_row = math.prod(out.shape[2:]) if out.ndim > 2 else 1
    dtype = out.dtype
    flat = out.reshape(-1)
    src = _EMPTY[dtype] if source is None else source.reshape(-1)  # empty: in place
    scale_rows, shift_rows = _per_row(scale, dtype), _per_row(bias, dtype)
    if scale_rows.size and shift_rows.size and scale_rows.size != shift_rows.size:  # per row and channel
        rows = out.shape[0] * out.shape[1]
        scale_rows, shift_rows = (np.resize(p, rows) for p in (scale_rows, shift_rows))
    load = source is not None or scale_rows.size > 0 or shift_rows.size > 0
    pending = [r.reshape(-1) for r in residuals]
    empty = _EMPTY[dtype]
    while True:  # two residuals per call: a longer chain goes in calls of up to two adds each
        cut, adds = len(steps), 0
        for s, step in enumerate(steps):
            adds += step[0] == "add"
            if adds > 2:
                cut = s
                break
        codes, params = encode(tuple(steps[:cut]), dtype)
        used = pending[:2] + [empty] * (2 - len(pending[:2]))
        _epilogue(src, flat, scale_rows, shift_rows, load, used[0], used[1], codes, params, per_row,
                  dtype == np.float32)
        if cut == len(steps):
            return out
        steps, pending, load = steps[cut:], pending[2:], False


def fresh(source: np.ndarray, steps: Sequence[tuple] = (), residuals: Sequence[np.ndarray] = (), *,
          scale: np.ndarray | None = None, shift: np.ndarray | None = None) -> np.ndarray | None:
    """steps(source * scale + shift) into a new array in one compiled pass (scale and shift as in
    run_epilogue), or None where the compiled path does not apply (numba off, strided or float16
    operands): the caller then runs its NumPy code. Standalone ops use it:

        fresh(x, (("relu",),))                       # relu(x)
        fresh(x, scale=gamma, shift=beta)            # inference batch norm, one multiply-add
        fresh(x, scale=s.reshape(-1))                # squeeze-excitation: x * s[n, c]
    """
    per_row_ok = all(p is None or (p.dtype == source.dtype and source.ndim >= 2
                                   and p.size in (source.shape[1], source.shape[0] * source.shape[1]))
                     for p in (scale, shift))
    if not per_row_ok or not applicable(source, *residuals):
        return None
    return run_epilogue(np.empty_like(source), shift, steps, residuals, source=source, scale=scale)


__all__ = ["BLOCK", "OPCODES", "applicable", "apply_steps", "encode", "fresh", "run_epilogue"]
