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

from convc.backends.triton.common import INTERPRET, row_blocks, window_origin, window_tap
from convc.backends.triton.gemm import gemm_launch
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def im2col_kernel(
    # pointers: input pixel matrix, column matrix [M, groups * K_g]
    x_ptr, col_ptr,
    # sizes: output pixels, channels per group, columns per group (KD*KH*KW*C_g), volumes, window
    M, C_g, K_g, D, H, W, OD, OH, OW, KH, KW,
    # window: stride, low padding and dilation per axis
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    # strides: elements between consecutive rows of x and of the column matrix
    ld_x, ld_col,
    # meta: tile
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """cols[m, g*K_g + kpos*C_g + c] = x[pixel under tap kpos of output m's window, g*C_g + c], 0 in the
    padding: one window tap of one group per program, for BLOCK_M output pixels.

    Tiles: program (i, kpos, g) owns pixels i*BLOCK_M .. at tap kpos = (kd, kh, kw) flattened, group g,
    and copies its C_g channels in blocks of BLOCK_C. Launch grid (cdiv(M, BLOCK_M), KD*KH*KW, groups)."""
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
    pix, inside = window_tap(nb, id0, ih0, iw0, kd, kh, kw, dil_d, dil_h, dil_w, D, H, W)
    inside = m_ok & inside

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
