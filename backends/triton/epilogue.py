"""The fused epilogue every output-writing kernel shares: bias, activations and residual adds, applied to
the fp32 accumulator in registers before the single store.

A node's `attrs["epilogue"]` (e.g. `(("add",), ("relu",))`) is encoded at compile time into four constexpr
step codes plus four runtime parameters, so each distinct epilogue compiles its own specialised kernel:

    codes, params = encode_epilogue(node)      # (ADD_R0, RELU, NONE, NONE), (0.0, 0.0, 0.0, 0.0)
"""
from __future__ import annotations

import triton
import triton.language as tl

from convc.backends.triton.common import max_keep_nan, min_keep_nan
from convc.errors import BackendError
from convc.ir import Node

# Step codes (constexpr). Residual adds name the operand they read, so the kernel needs no counter.
NONE, RELU, LEAKY_RELU, SIGMOID, TANH, ELU, ADD_R0, ADD_R1 = range(8)
CLIP_MIN, CLIP_MAX, HARDSWISH, HARDSIGMOID, SILU, GELU, GELU_TANH = range(8, 15)
MAX_STEPS = 4
MAX_RESIDUALS = 2
_ACTIVATION_CODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH, "elu": ELU,
                     "hardswish": HARDSWISH, "hardsigmoid": HARDSIGMOID, "silu": SILU, "gelu": GELU,
                     "gelu_tanh": GELU_TANH}


def epilogue_codes_needed(steps: tuple[tuple, ...]) -> int:
    return sum(2 if step[0] == "clip" else 1 for step in steps)


def encode_steps(steps: tuple[tuple, ...], where: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Epilogue steps -> (MAX_STEPS codes, MAX_STEPS float params), padded with NONE."""
    if epilogue_codes_needed(steps) > MAX_STEPS:
        raise BackendError(f"{where}: epilogue {steps} needs {epilogue_codes_needed(steps)} step codes (clip "
                           f"takes two); the triton backend fuses at most {MAX_STEPS} (leave the rest as "
                           f"separate nodes)")
    codes: list[int] = []
    params: list[float] = []
    adds = 0
    for step in steps:
        kind = step[0]
        if kind == "add":
            if adds >= MAX_RESIDUALS:
                raise BackendError(f"{where}: epilogue {steps} adds {adds + 1} residuals; the triton backend "
                                   f"fuses at most {MAX_RESIDUALS}")
            codes.append(ADD_R0 + adds)
            params.append(0.0)
            adds += 1
        elif kind == "clip":  # two codes: max with the low bound, then min with the high one
            codes += [CLIP_MIN, CLIP_MAX]
            params += [float(step[1]), float(step[2])]
        elif kind in _ACTIVATION_CODES:
            codes.append(_ACTIVATION_CODES[kind])
            params.append(float(step[1]) if len(step) > 1 else 0.0)
        else:
            raise BackendError(f"{where}: unknown epilogue step {step!r}")
    codes += [NONE] * (MAX_STEPS - len(codes))
    params += [0.0] * (MAX_STEPS - len(params))
    return tuple(codes), tuple(params)


def encode_epilogue(node: Node) -> tuple[tuple[int, ...], tuple[float, ...]]:
    return encode_steps(tuple(node.attrs.get("epilogue", ())), f"node '{node.name}' ({node.op})")


def epilogue_meta(codes: tuple[int, ...]) -> dict[str, int]:
    """The constexpr keyword arguments E0..E3 of a kernel that applies the epilogue."""
    return {f"E{i}": c for i, c in enumerate(codes)}


@triton.jit
def _apply_step(acc, CODE: tl.constexpr, param, r0_ptr, r0_offs, r1_ptr, r1_offs, mask):
    # NaN-keeping max/min: relu(NaN) and elu(NaN) are NaN in torch; tl.maximum would return 0.
    if CODE == 1:  # relu
        acc = max_keep_nan(acc, 0.0)
    elif CODE == 2:  # leaky_relu
        acc = tl.where(acc > 0, acc, acc * param)
    elif CODE == 3:  # sigmoid
        acc = 1.0 / (1.0 + tl.exp(-acc))
    elif CODE == 4:  # tanh, via exp so it exists in every Triton version; saturates to +-1 without NaN
        acc = 2.0 / (1.0 + tl.exp(-2.0 * acc)) - 1.0
    elif CODE == 5:  # elu
        acc = tl.where(acc > 0, acc, param * (tl.exp(min_keep_nan(acc, 0.0)) - 1.0))
    elif CODE == 6:
        acc = acc + tl.load(r0_ptr + r0_offs, mask=mask, other=0.0).to(tl.float32)
    elif CODE == 7:
        acc = acc + tl.load(r1_ptr + r1_offs, mask=mask, other=0.0).to(tl.float32)
    elif CODE == 8:  # clip, low bound
        acc = max_keep_nan(acc, param)
    elif CODE == 9:  # clip, high bound
        acc = min_keep_nan(acc, param)
    elif CODE == 10:  # hardswish: x * clip(x + 3, 0, 6) / 6
        acc = acc * min_keep_nan(max_keep_nan(acc + 3.0, 0.0), 6.0) / 6.0
    elif CODE == 11:  # hardsigmoid
        acc = min_keep_nan(max_keep_nan(acc + 3.0, 0.0), 6.0) / 6.0
    elif CODE == 12:  # silu
        acc = acc / (1.0 + tl.exp(-acc))
    elif CODE == 13:  # gelu, exact
        acc = 0.5 * acc * (1.0 + tl.math.erf(acc * 0.7071067811865476))
    elif CODE == 14:  # gelu, tanh approximation (tanh through exp, as above)
        inner = 0.7978845608028654 * (acc + 0.044715 * acc * acc * acc)
        acc = 0.5 * acc * (2.0 / (1.0 + tl.exp(-2.0 * inner)))
    return acc


@triton.jit
def apply_epilogue(acc, rows, cols, mask, r0_ptr, ld_r0, r1_ptr, ld_r1, p0, p1, p2, p3,
                   E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, E3: tl.constexpr):
    """acc: fp32 tile; rows/cols broadcast to its shape (pixel index, channel index); residual r is read at
    rows * ld_r + cols."""
    r0_offs = rows * ld_r0 + cols
    r1_offs = rows * ld_r1 + cols
    acc = _apply_step(acc, E0, p0, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    acc = _apply_step(acc, E1, p1, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    acc = _apply_step(acc, E2, p2, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    acc = _apply_step(acc, E3, p3, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    return acc


@triton.jit
def finish_tile(acc, rm, ch, m_ok, n_ok, bias_ptr, y_ptr, ld_y, r0_ptr, ld_r0, r1_ptr, ld_r1, p0, p1, p2, p3,
                HAS_BIAS: tl.constexpr, E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, E3: tl.constexpr,
                WIDE: tl.constexpr):
    """The tail every GEMM-like kernel shares: acc [BLOCK_M, BLOCK_N] fp32 for pixels `rm` and output
    channels `ch` gets the bias, the epilogue steps and one store in y's dtype at y[rm * ld_y + ch].
    WIDE: row offsets in 64 bits (a matrix of 2**31 elements or more)."""
    if HAS_BIAS:
        acc += tl.load(bias_ptr + ch, mask=n_ok, other=0.0)[None, :]
    mask = m_ok[:, None] & n_ok[None, :]
    rows = rm.to(tl.int64) if WIDE else rm
    acc = apply_epilogue(acc, rows[:, None], ch[None, :], mask, r0_ptr, ld_r0, r1_ptr, ld_r1, p0, p1, p2, p3,
                         E0, E1, E2, E3)
    tl.store(y_ptr + rows[:, None] * ld_y + ch[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)
