"""Explicit im2col convolution: one kernel copies every receptive field into a [M, g * K] column matrix
(K = KD*KH*KW*C/g, zeros where the window hangs over the padding), then the batched GEMM of gemm.py
multiplies each group's columns by its packed weights and applies the epilogue.

Costs M*K extra memory (a planned scratch buffer) but gives the GEMM plain, contiguous operands.

    launches = conv_im2col_launches(node, geo, x, cols, w, bias, y, residuals, codes, params, dot_mode, config)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import INTERPRET, row_blocks, window_origin
from convc.backends.triton.gemm import gemm_launch
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def im2col_kernel(
    x_ptr, col_ptr,
    M, C_g, K_g, D, H, W, OD, OH, OW, KH, KW,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    ld_x, ld_col,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid_m = tl.program_id(0)
    kpos = tl.program_id(1)  # kernel position (kd, kh, kw), flattened
    group = tl.program_id(2)
    kw = kpos % KW
    kh = (kpos // KW) % KH
    kd = kpos // (KW * KH)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.arange(0, BLOCK_C)
    m_ok = rm < M

    nb, id0, ih0, iw0 = window_origin(rm, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w)
    idd = id0 + kd * dil_d
    ih = ih0 + kh * dil_h
    iw = iw0 + kw * dil_w
    inside = m_ok & (idd >= 0) & (idd < D) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    pix = ((nb * D + idd) * H + ih) * W + iw

    src = x_ptr + pix[:, None] * ld_x + group * C_g
    # Column of (group, kd, kh, kw, c=0) in the [M, groups * K_g] column matrix; 64-bit rows because
    # M * K passes 2**31 for large batches (VGG's conv1_2 at batch 64 is 1.8e9 elements).
    dst = col_ptr + rm.to(tl.int64)[:, None] * ld_col + group * K_g + kpos * C_g
    for c0 in range(0, C_g, BLOCK_C):
        cc = c0 + rc
        c_ok = cc < C_g
        v = tl.load(src + cc[None, :], mask=inside[:, None] & c_ok[None, :], other=0.0)
        tl.store(dst + cc[None, :], v, mask=m_ok[:, None] & c_ok[None, :])


def im2col_columns(geo: ConvGeometry) -> int:
    """Width of the column matrix: groups * KD*KH*KW * C/g (= KD*KH*KW*C)."""
    return geo.groups * geo.kernel_volume * geo.c_per_group


def conv_im2col_launches(node: str, geo: ConvGeometry, x: View, cols: View, w: torch.Tensor,
                         bias: torch.Tensor | None, y: View, residuals: list[View], codes: tuple[int, ...],
                         params: tuple[float, ...], dot_mode: int, config: dict[str, Any]) -> list[Launch]:
    """`cols` is a planned scratch view of [M, im2col_columns(geo)]; `w` is packed as for implicit GEMM."""
    k_g = geo.kernel_volume * geo.c_per_group
    if (cols.rows, cols.cols) != (geo.out_pixels, geo.groups * k_g):
        raise BackendError(f"node '{node}': column buffer {cols.rows}x{cols.cols} differs from "
                           f"{geo.out_pixels}x{geo.groups * k_g}")
    if (x.rows, x.cols) != (geo.n * geo.d * geo.h * geo.w, geo.c):
        raise BackendError(f"node '{node}': input view {x.rows}x{x.cols} does not match {geo}")
    block_m, block_c = row_blocks(geo.out_pixels, geo.c_per_group, gpu_elements=4096, gpu_max_cols=64)
    if not INTERPRET:
        block_m = 64
    args = (x.ptr, cols.ptr, geo.out_pixels, geo.c_per_group, k_g, geo.d, geo.h, geo.w, geo.od, geo.oh, geo.ow,
            geo.kernel[1], geo.kernel[2], *geo.stride, *geo.pad_lo, *geo.dilation, x.ld, cols.ld)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(geo.out_pixels, cfg["BLOCK_M"]), geo.kernel_volume, geo.groups)

    gather = Launch(node, im2col_kernel, grid, args, {}, {"BLOCK_M": block_m, "BLOCK_C": block_c}, out=cols)
    b = w.reshape(geo.groups, k_g, geo.o_per_group)
    a = View(cols.storage, cols.offset, cols.rows, k_g, cols.ld)
    return [gather, *gemm_launch(node, a, b, bias, y, residuals, codes, params, dot_mode, config,
                                 batches=geo.groups, stride_ag=k_g)]
