"""Elementwise ops on the channels-last pixel matrix: y = epilogue(x * scale[c] + shift[c] + bias[p, c]).

One kernel serves batch_norm and scale_shift (scale and shift; batch norm's are folded in float64 at
compile time), bias_add (a bias per position and channel), the activations (epilogue steps) and add
(an epilogue residual add).

    launch = elementwise_launch("bn1", x, y, scale=s, shift=b)
    launch = elementwise_launch("relu1", x, y, codes=encode_steps((("relu",),), "relu1").steps)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import row_blocks
from convc.backends.triton.epilogue import NO_EPILOGUE, apply_epilogue, epilogue_meta
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def elementwise_kernel(
    # pointers: input, per-channel scale and shift, per-(position, channel) bias, output, residuals
    x_ptr, scale_ptr, shift_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes: pixels, channels, positions per example (the bias repeats every P pixels)
    M, C, P,
    # strides: elements between consecutive pixels of x, y and the residuals
    ld_x, ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: which operands exist, EpilogueStep codes, tile
    HAS_SCALE: tl.constexpr, HAS_SHIFT: tl.constexpr, HAS_PIXEL_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = epilogue(x[m, c] * scale[c] + shift[c] + bias[m % P, c]) over the [M, C] channels-last pixel
    matrix, each term only when its HAS_* flag is set, computed in fp32 and stored in y's dtype.

    Tiles: program (i, j) owns pixels i*BLOCK_M .. and channels j*BLOCK_C ..; no loop, one load and one
    store per element. Launch grid (cdiv(M, BLOCK_M), cdiv(C, BLOCK_C))."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_ok = rm < M
    c_ok = rc < C
    mask = m_ok[:, None] & c_ok[None, :]
    v = tl.load(x_ptr + rm[:, None] * ld_x + rc[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_SCALE:
        v = v * tl.load(scale_ptr + rc, mask=c_ok, other=0.0)[None, :]
    if HAS_SHIFT:
        v = v + tl.load(shift_ptr + rc, mask=c_ok, other=0.0)[None, :]
    if HAS_PIXEL_BIAS:
        # bias_add: one value per (position within the example, channel); P positions per example.
        v = v + tl.load(bias_ptr + (rm % P)[:, None] * C + rc[None, :], mask=mask, other=0.0)
    v = apply_epilogue(v, rm[:, None], rc[None, :], mask, r0_ptr, ld_r0, r1_ptr, ld_r1,
                       epi_param0, epi_param1, epi_param2, epi_param3,
                       EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3)
    tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


def elementwise_launch(node: str, x: View, y: View, *, scale: torch.Tensor | None = None,
                       shift: torch.Tensor | None = None, pixel_bias: torch.Tensor | None = None,
                       positions: int = 1, residuals: list[View] | None = None,
                       codes: tuple[int, ...] = NO_EPILOGUE.steps,
                       params: tuple[float, ...] = NO_EPILOGUE.params) -> Launch:
    """Binds the elementwise kernel from x to y (same [rows, cols]); `codes` and `params` are an
    EncodedEpilogue's steps and parameters (epilogue.py)."""
    residuals = residuals or []
    for v in [y, *residuals]:
        if (v.rows, v.cols) != (x.rows, x.cols):
            raise BackendError(f"node '{node}': operand {v.rows}x{v.cols} differs from the input {x.rows}x{x.cols}")
    for name, vec, n in (("scale", scale, x.cols), ("shift", shift, x.cols), ("bias", pixel_bias, positions * x.cols)):
        if vec is not None and vec.numel() != n:
            raise BackendError(f"node '{node}': {name} has {vec.numel()} values, expected {n}")
    dummy = x.ptr
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y
    args = (x.ptr, scale if scale is not None else dummy, shift if shift is not None else dummy,
            pixel_bias if pixel_bias is not None else dummy, y.ptr, r0.ptr, r1.ptr,
            x.rows, x.cols, positions, x.ld, y.ld, r0.ld, r1.ld, *params)
    meta = {"HAS_SCALE": scale is not None, "HAS_SHIFT": shift is not None,
            "HAS_PIXEL_BIAS": pixel_bias is not None, **epilogue_meta(codes)}
    block_m, block_c = row_blocks(x.rows, x.cols, gpu_elements=4096, gpu_max_cols=128)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(x.rows, cfg["BLOCK_M"]), triton.cdiv(x.cols, cfg["BLOCK_C"]))

    return Launch(node, elementwise_kernel, grid, args, meta, {"BLOCK_M": block_m, "BLOCK_C": block_c}, out=y)
