"""Helpers every kernel file shares: the tensor-core product, dtype mapping and the interpreter switch.

TRITON_INTERPRET is read when kernels are decorated, so `INTERPRET` records it once, at import time.

Under the interpreter every program is run op by op in Python with NumPy: an op costs tens of microseconds
of bookkeeping whatever its block size, so block sizes there are chosen to run few, large programs
(`interpreter_block`, `row_blocks`, `flat_block`); GPU block sizes are untouched by these knobs.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import triton
import triton.language as tl

INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

# Interpreter block limits, read at bind time (tests lower them to exercise multi-program tilings):
INTERPRETER_MAX_BLOCK = 512  # the longest block edge (BLOCK_M / BLOCK_N / BLOCK_K ...)
INTERPRETER_TILE = 1 << 18  # elements of one program's largest tile

TORCH_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                        "bfloat16": torch.bfloat16}

# DOT_MODE constexpr: how tl.dot treats its operands (constexprs, so the jit helper below can name them).
DOT_NATIVE = tl.constexpr(0)  # fp16 / bf16 operands straight to the tensor cores
DOT_IEEE = tl.constexpr(1)  # fp32 operands, full-precision product
DOT_TF32 = tl.constexpr(2)  # fp32 operands rounded to tf32 (only when the user asks for tf32=True)
DOT_UPCAST = tl.constexpr(3)  # bf16 operands widened to fp32 first: the interpreter computes bf16 dots wrongly


def dot_mode(dtype: str, tf32: bool = False) -> int:
    """The DOT_MODE of a kernel computing in `dtype` (a plain int, for launch metadata)."""
    if dtype == "float32":
        return int((DOT_TF32 if tf32 else DOT_IEEE).value)
    if dtype == "bfloat16" and INTERPRET:
        return int(DOT_UPCAST.value)
    return int(DOT_NATIVE.value)


@triton.jit
def dot_acc(a, b, acc, DOT_MODE: tl.constexpr):
    """acc + a @ b with fp32 accumulation."""
    if DOT_MODE == DOT_IEEE:
        acc = tl.dot(a, b, acc, input_precision="ieee")
    elif DOT_MODE == DOT_TF32:
        acc = tl.dot(a, b, acc, input_precision="tf32")
    elif DOT_MODE == DOT_UPCAST:
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit
def max_keep_nan(a, b):
    """max(a, b), NaN where either is NaN, as torch's max, relu and max pooling are. tl.maximum alone
    returns the other operand for a NaN (IEEE maxNum), which would turn a NaN into a number."""
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def min_keep_nan(a, b):
    """min(a, b), NaN where either is NaN (see max_keep_nan)."""
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def max_reduce_keep_nan(x, axis: tl.constexpr):
    """tl.max(x, axis), NaN where the reduced slice holds a NaN (tl.max drops NaN on the GPU)."""
    return tl.reduce(x, axis, max_keep_nan)


@triton.jit
def decode_pixel(rm, OD, OH, OW):
    """Flattened NDHWC output pixels -> (batch index, output d, h, w of each one)."""
    ow = rm % OW
    t = rm // OW
    oh = t % OH
    t = t // OH
    return t // OD, t % OD, oh, ow


@triton.jit
def window_origin(rm, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w):
    """Flattened NDHWC output pixels -> (batch index, first input d, h, w of each one's window); the
    coordinates may be negative (padding). Shared by every convolution and pooling kernel."""
    nb, od, oh, ow = decode_pixel(rm, OD, OH, OW)
    return nb, od * stride_d - pad_d, oh * stride_h - pad_h, ow * stride_w - pad_w


@triton.jit
def window_tap(nb, id0, ih0, iw0, kd, kh, kw, dil_d, dil_h, dil_w, D, H, W):
    """The input pixel that window tap (kd, kh, kw) reads for outputs whose windows start at (id0, ih0, iw0)
    (window_origin), as a row of the NDHWC pixel matrix, and whether it lies inside the input (False in
    the padding: the caller masks its load). Shared by the conv and pooling window loops; operands may be
    broadcast ([:, None] / [None, :]) for a 2-D tile of taps.

        pix, inside = window_tap(nb, id0, ih0, iw0, kd, kh, kw, 1, 1, 1, D, H, W)
    """
    idd = id0 + kd * dil_d
    ih = ih0 + kh * dil_h
    iw = iw0 + kw * dil_w
    inside = (idd >= 0) & (idd < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    return ((nb * D + idd) * H + ih) * W + iw, inside


@triton.jit
def grouped_tile(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """A flat program id -> (row-tile, column-tile) in grouped order: programs launched together walk
    GROUP_M row-tiles down one column-tile before moving right, so they share the column's weights (and
    their rows' activations) in L2 instead of each streaming a different weight block."""
    row_tiles = tl.cdiv(M, BLOCK_M)
    col_tiles = tl.cdiv(N, BLOCK_N)
    band = pid // (GROUP_M * col_tiles)  # which band of GROUP_M row-tiles
    first_row = band * GROUP_M
    rows_in_band = tl.minimum(row_tiles - first_row, GROUP_M)
    within = pid % (GROUP_M * col_tiles)
    return first_row + within % rows_in_band, within // rows_in_band


def cdiv(a: int, b: int) -> int:
    return triton.cdiv(a, b)


def pow2_at_least(n: int, floor: int = 1) -> int:
    """The smallest power of two >= max(n, floor) (block sizes must be powers of two)."""
    return max(triton.next_power_of_2(max(int(n), 1)), floor)


def interpreter_block(size: int, limit: int | None = None, floor: int = 16) -> int:
    """An interpreter block edge: the power of two covering `size`, at most `limit` (default
    INTERPRETER_MAX_BLOCK; rounded down to a power of two) and at least `floor`."""
    cap = max(1, INTERPRETER_MAX_BLOCK if limit is None else limit)
    return max(floor, min(pow2_at_least(size), 1 << (cap.bit_length() - 1)))


def row_blocks(rows: int, cols: int, *, gpu_elements: int, gpu_max_cols: int, gpu_min_rows: int = 1
               ) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_C) of a memory-bound kernel over a [rows, cols] pixel matrix. On the GPU: up to
    `gpu_max_cols` channels and `gpu_elements` per tile; under the interpreter one tile covers as much of
    the matrix as INTERPRETER_TILE allows."""
    if INTERPRET:
        block_c = interpreter_block(cols, floor=1)
        return interpreter_block(rows, INTERPRETER_TILE // block_c, floor=1), block_c
    block_c = min(gpu_max_cols, pow2_at_least(cols))
    return max(gpu_min_rows, gpu_elements // block_c), block_c


def flat_block(total: int, gpu: int) -> int:
    """BLOCK of a 1-D kernel over `total` elements: `gpu` on the GPU, up to INTERPRETER_TILE interpreted."""
    return interpreter_block(total, INTERPRETER_TILE, floor=1) if INTERPRET else gpu


@contextmanager
def unchecked_overflow() -> Iterator[None]:
    """Turns off the interpreter's integer-overflow assertions while our kernels run.

    The interpreter redoes every int32 add / sub / mul of index math in int64 and asserts it fits (about
    half of all interpreted time); compiled kernels check nothing unless built with debug=True, so this
    matches what runs on the GPU. Only the interpreter's own options object is touched, and restored.
    CONVC_TRITON_SANITIZE_OVERFLOW=1 keeps the assertions (to hunt an index overflow at a large shape)."""
    if not INTERPRET or os.environ.get("CONVC_TRITON_SANITIZE_OVERFLOW", "0") not in ("", "0"):
        yield
        return
    from triton.runtime import interpreter

    builder = getattr(interpreter, "interpreter_builder", None)
    options = getattr(builder, "options", None)
    if options is None or not getattr(options, "sanitize_overflow", False):
        yield
        return
    builder.options = dataclasses.replace(options, sanitize_overflow=False)  # type: ignore[union-attr]
    try:
        yield
    finally:
        builder.options = options  # type: ignore[union-attr]
