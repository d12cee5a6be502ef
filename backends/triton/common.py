"""Helpers every kernel file shares: the tensor-core product, dtype mapping and the interpreter switch.

TRITON_INTERPRET is read when kernels are decorated, so `INTERPRET` records it once, at import time.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

TORCH_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                        "bfloat16": torch.bfloat16}

# DOT_MODE constexpr: how tl.dot treats its operands.
DOT_NATIVE = 0  # fp16 / bf16 operands straight to the tensor cores
DOT_IEEE = 1  # fp32 operands, full-precision product
DOT_TF32 = 2  # fp32 operands rounded to tf32 (only when the user asks for tf32=True)
DOT_UPCAST = 3  # bf16 operands widened to fp32 first: the CPU interpreter computes bf16 dots wrongly


def dot_mode(dtype: str, tf32: bool = False) -> int:
    if dtype == "float32":
        return DOT_TF32 if tf32 else DOT_IEEE
    if dtype == "bfloat16" and INTERPRET:
        return DOT_UPCAST
    return DOT_NATIVE


@triton.jit
def dot_acc(a, b, acc, DOT_MODE: tl.constexpr):
    """acc + a @ b with fp32 accumulation."""
    if DOT_MODE == 1:
        acc = tl.dot(a, b, acc, input_precision="ieee")
    elif DOT_MODE == 2:
        acc = tl.dot(a, b, acc, input_precision="tf32")
    elif DOT_MODE == 3:
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc)
    return acc


def cdiv(a: int, b: int) -> int:
    return triton.cdiv(a, b)


def pow2_at_least(n: int, floor: int = 1) -> int:
    """The smallest power of two >= max(n, floor) (block sizes must be powers of two)."""
    return max(triton.next_power_of_2(max(int(n), 1)), floor)
