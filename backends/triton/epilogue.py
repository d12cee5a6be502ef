"""The fused epilogue every output-writing kernel shares: bias, activations and residual adds, applied to
the fp32 accumulator in registers before the single store.

Encoding. A node's `attrs["epilogue"]` (e.g. `(("add",), ("leaky_relu", 0.1))`) becomes MAX_STEPS = 4 step
codes, each an `EpilogueStep`, plus one float parameter per step (leaky_relu's slope, elu's alpha, a clip
bound; 0.0 where a step takes none), padded with NONE:

    steps, params = encode_epilogue(node)   # (ADD_RESIDUAL0, LEAKY_RELU, NONE, NONE), (0.0, 0.1, 0.0, 0.0)
    epilogue_meta(steps)                    # {"EPI_STEP0": 6, "EPI_STEP1": 2, "EPI_STEP2": 0, "EPI_STEP3": 0}

Every kernel that applies an epilogue takes the codes as constexprs EPI_STEP0..EPI_STEP3 (so each distinct
epilogue compiles its own specialised kernel, and a NONE step costs nothing) and the parameters as runtime
floats epi_param0..epi_param3 (so a new slope reuses the compiled kernel). Residual adds name the operand
they read (ADD_RESIDUAL0 reads r0, ADD_RESIDUAL1 r1), so the kernel needs no counter; clip takes two steps
(CLIP_LOW then CLIP_HIGH). Inside @triton.jit code the codes are compared against the module-level
`tl.constexpr` globals below (STEP_RELU, ...), the only form of module constant Triton lets a kernel read.
"""
from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import triton
import triton.language as tl

from convc.backends.triton.common import max_keep_nan, min_keep_nan
from convc.errors import BackendError
from convc.ir import Node


class EpilogueStep(IntEnum):
    """What one epilogue step does to the accumulator; the value is the constexpr a kernel specialises on."""

    NONE = 0
    RELU = 1
    LEAKY_RELU = 2  # parameter: negative slope
    SIGMOID = 3
    TANH = 4
    ELU = 5  # parameter: alpha
    ADD_RESIDUAL0 = 6  # + the first residual operand (r0)
    ADD_RESIDUAL1 = 7  # + the second residual operand (r1)
    CLIP_LOW = 8  # parameter: the low bound (max with it)
    CLIP_HIGH = 9  # parameter: the high bound (min with it)
    HARDSWISH = 10
    HARDSIGMOID = 11
    SILU = 12
    GELU = 13  # exact, through erf
    GELU_TANH = 14  # the tanh approximation


# The codes as constexpr globals, for the comparisons in _apply_step (jit code reads no IntEnum).
STEP_RELU = tl.constexpr(EpilogueStep.RELU.value)
STEP_LEAKY_RELU = tl.constexpr(EpilogueStep.LEAKY_RELU.value)
STEP_SIGMOID = tl.constexpr(EpilogueStep.SIGMOID.value)
STEP_TANH = tl.constexpr(EpilogueStep.TANH.value)
STEP_ELU = tl.constexpr(EpilogueStep.ELU.value)
STEP_ADD_RESIDUAL0 = tl.constexpr(EpilogueStep.ADD_RESIDUAL0.value)
STEP_ADD_RESIDUAL1 = tl.constexpr(EpilogueStep.ADD_RESIDUAL1.value)
STEP_CLIP_LOW = tl.constexpr(EpilogueStep.CLIP_LOW.value)
STEP_CLIP_HIGH = tl.constexpr(EpilogueStep.CLIP_HIGH.value)
STEP_HARDSWISH = tl.constexpr(EpilogueStep.HARDSWISH.value)
STEP_HARDSIGMOID = tl.constexpr(EpilogueStep.HARDSIGMOID.value)
STEP_SILU = tl.constexpr(EpilogueStep.SILU.value)
STEP_GELU = tl.constexpr(EpilogueStep.GELU.value)
STEP_GELU_TANH = tl.constexpr(EpilogueStep.GELU_TANH.value)

MAX_STEPS = 4  # EPI_STEP0..EPI_STEP3
MAX_RESIDUALS = 2  # r0, r1
STEP_META = tuple(f"EPI_STEP{i}" for i in range(MAX_STEPS))  # the kernels' constexpr keyword names
_ACTIVATIONS = {"relu": EpilogueStep.RELU, "leaky_relu": EpilogueStep.LEAKY_RELU,
                "sigmoid": EpilogueStep.SIGMOID, "tanh": EpilogueStep.TANH, "elu": EpilogueStep.ELU,
                "hardswish": EpilogueStep.HARDSWISH, "hardsigmoid": EpilogueStep.HARDSIGMOID,
                "silu": EpilogueStep.SILU, "gelu": EpilogueStep.GELU, "gelu_tanh": EpilogueStep.GELU_TANH}
_RESIDUAL_ADDS = (EpilogueStep.ADD_RESIDUAL0, EpilogueStep.ADD_RESIDUAL1)


class EncodedEpilogue(NamedTuple):
    """An epilogue as a kernel takes it: MAX_STEPS step codes (constexprs) and their float parameters."""

    steps: tuple[EpilogueStep, ...]
    params: tuple[float, ...]


NO_EPILOGUE = EncodedEpilogue((EpilogueStep.NONE,) * MAX_STEPS, (0.0,) * MAX_STEPS)


def epilogue_codes_needed(steps: tuple[tuple, ...]) -> int:
    """Step codes an epilogue takes: one per step, two for clip."""
    return sum(2 if step[0] == "clip" else 1 for step in steps)


def encode_steps(steps: tuple[tuple, ...], where: str) -> EncodedEpilogue:
    """Epilogue steps -> MAX_STEPS codes and parameters, padded with NONE; `where` names the node in errors.

        encode_steps((("clip", 0.0, 6.0),), "conv1")
        # -> steps (CLIP_LOW, CLIP_HIGH, NONE, NONE), params (0.0, 6.0, 0.0, 0.0)
    """
    if epilogue_codes_needed(steps) > MAX_STEPS:
        raise BackendError(f"{where}: epilogue {steps} needs {epilogue_codes_needed(steps)} step codes (clip "
                           f"takes two); the triton backend fuses at most {MAX_STEPS} (leave the rest as "
                           f"separate nodes)")
    codes: list[EpilogueStep] = []
    params: list[float] = []
    adds = 0
    for step in steps:
        kind = step[0]
        if kind == "add":
            if adds >= MAX_RESIDUALS:
                raise BackendError(f"{where}: epilogue {steps} adds {adds + 1} residuals; the triton backend "
                                   f"fuses at most {MAX_RESIDUALS}")
            codes.append(_RESIDUAL_ADDS[adds])
            params.append(0.0)
            adds += 1
        elif kind == "clip":
            codes += [EpilogueStep.CLIP_LOW, EpilogueStep.CLIP_HIGH]
            params += [float(step[1]), float(step[2])]
        elif kind in _ACTIVATIONS:
            codes.append(_ACTIVATIONS[kind])
            params.append(float(step[1]) if len(step) > 1 else 0.0)
        else:
            raise BackendError(f"{where}: unknown epilogue step {step!r}")
    codes += [EpilogueStep.NONE] * (MAX_STEPS - len(codes))
    params += [0.0] * (MAX_STEPS - len(params))
    return EncodedEpilogue(tuple(codes), tuple(params))


def encode_epilogue(node: Node) -> EncodedEpilogue:
    """The encoded `attrs["epilogue"]` of a conv / linear node."""
    return encode_steps(tuple(node.attrs.get("epilogue", ())), f"node '{node.name}' ({node.op})")


def epilogue_meta(steps: tuple[int, ...]) -> dict[str, int]:
    """The constexpr keyword arguments EPI_STEP0..EPI_STEP3 of a kernel that applies the epilogue (plain
    ints, so launch descriptions stay JSON)."""
    return {name: int(code) for name, code in zip(STEP_META, steps, strict=True)}


@triton.jit
def _apply_step(acc, STEP: tl.constexpr, param, r0_ptr, r0_offs, r1_ptr, r1_offs, mask):
    """One epilogue step on the fp32 tile `acc`; STEP is an EpilogueStep code, NONE leaves acc as it is."""
    # NaN-keeping max/min: relu(NaN) and elu(NaN) are NaN in torch; tl.maximum would return 0.
    if STEP == STEP_RELU:
        acc = max_keep_nan(acc, 0.0)
    elif STEP == STEP_LEAKY_RELU:
        acc = tl.where(acc > 0, acc, acc * param)
    elif STEP == STEP_SIGMOID:
        acc = 1.0 / (1.0 + tl.exp(-acc))
    elif STEP == STEP_TANH:  # via exp so it exists in every Triton version; saturates to +-1 without NaN
        acc = 2.0 / (1.0 + tl.exp(-2.0 * acc)) - 1.0
    elif STEP == STEP_ELU:
        acc = tl.where(acc > 0, acc, param * (tl.exp(min_keep_nan(acc, 0.0)) - 1.0))
    elif STEP == STEP_ADD_RESIDUAL0:
        acc = acc + tl.load(r0_ptr + r0_offs, mask=mask, other=0.0).to(tl.float32)
    elif STEP == STEP_ADD_RESIDUAL1:
        acc = acc + tl.load(r1_ptr + r1_offs, mask=mask, other=0.0).to(tl.float32)
    elif STEP == STEP_CLIP_LOW:
        acc = max_keep_nan(acc, param)
    elif STEP == STEP_CLIP_HIGH:
        acc = min_keep_nan(acc, param)
    elif STEP == STEP_HARDSWISH:  # x * clip(x + 3, 0, 6) / 6
        acc = acc * min_keep_nan(max_keep_nan(acc + 3.0, 0.0), 6.0) / 6.0
    elif STEP == STEP_HARDSIGMOID:
        acc = min_keep_nan(max_keep_nan(acc + 3.0, 0.0), 6.0) / 6.0
    elif STEP == STEP_SILU:
        acc = acc / (1.0 + tl.exp(-acc))
    elif STEP == STEP_GELU:
        acc = 0.5 * acc * (1.0 + tl.math.erf(acc * 0.7071067811865476))
    elif STEP == STEP_GELU_TANH:  # tanh through exp, as above
        inner = 0.7978845608028654 * (acc + 0.044715 * acc * acc * acc)
        acc = 0.5 * acc * (2.0 / (1.0 + tl.exp(-2.0 * inner)))
    return acc


@triton.jit
def apply_epilogue(
    acc, rows, cols, mask,
    # residual operands: pointer and row stride of each
    r0_ptr, ld_r0, r1_ptr, ld_r1,
    # the steps' float parameters, then their EpilogueStep codes
    epi_param0, epi_param1, epi_param2, epi_param3,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
):
    """acc: fp32 tile; rows/cols broadcast to its shape (pixel index, channel index); residual r is read at
    rows * ld_r + cols. Applies EPI_STEP0 .. EPI_STEP3 in order."""
    r0_offs = rows * ld_r0 + cols
    r1_offs = rows * ld_r1 + cols
    acc = _apply_step(acc, EPI_STEP0, epi_param0, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    acc = _apply_step(acc, EPI_STEP1, epi_param1, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    acc = _apply_step(acc, EPI_STEP2, epi_param2, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    acc = _apply_step(acc, EPI_STEP3, epi_param3, r0_ptr, r0_offs, r1_ptr, r1_offs, mask)
    return acc


@triton.jit
def finish_tile(
    acc, rm, ch, m_ok, n_ok,
    # bias and output: pointers, output row stride
    bias_ptr, y_ptr, ld_y,
    # residual operands: pointer and row stride of each
    r0_ptr, ld_r0, r1_ptr, ld_r1,
    # the epilogue steps' float parameters
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, EpilogueStep codes, 64-bit row offsets
    HAS_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    WIDE: tl.constexpr,
):
    """The tail every GEMM-like kernel shares: acc [BLOCK_M, BLOCK_N] fp32 for pixels `rm` and output
    channels `ch` gets the bias, the epilogue steps and one store in y's dtype at y[rm * ld_y + ch].
    WIDE: row offsets in 64 bits (a matrix of 2**31 elements or more)."""
    if HAS_BIAS:
        acc += tl.load(bias_ptr + ch, mask=n_ok, other=0.0)[None, :]
    mask = m_ok[:, None] & n_ok[None, :]
    rows = rm.to(tl.int64) if WIDE else rm
    acc = apply_epilogue(acc, rows[:, None], ch[None, :], mask, r0_ptr, ld_r0, r1_ptr, ld_r1,
                         epi_param0, epi_param1, epi_param2, epi_param3,
                         EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3)
    tl.store(y_ptr + rows[:, None] * ld_y + ch[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)
