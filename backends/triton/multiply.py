"""Elementwise multiply of two channels-last pixel matrices, one of them broadcast: y = x * s.

s may be x's own shape, a squeeze-excitation scale (N, C, 1, ...) (one row per example), a (1, C, 1, ...)
vector, or one value per pixel (N, 1, H, W). Row r of x reads row r // rows_per_s of s, and column c
reads column c * col_step (col_step 0 when s has one channel).

    launch = multiply_launch("se.mul", x, s, y, rows_per_s=49, col_step=1)
"""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from convc.backends.triton.common import row_blocks
from convc.backends.triton.launch import Launch, View


@triton.jit
def multiply_kernel(
    # pointers: full operand x, broadcast operand s, output
    x_ptr, s_ptr, y_ptr,
    # sizes: pixels and channels of x and y
    M, C,
    # broadcast: rows of x per row of s, column step in s (0: one channel)
    rows_per_s, col_step,
    # strides: elements between consecutive rows of x, s and y
    ld_x, ld_s, ld_y,
    # meta: tile
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = x[m, c] * s[m // rows_per_s, c * col_step], in fp32, stored in y's dtype.

    Tiles: program (i, j) owns [BLOCK_M pixels, BLOCK_C channels]; no loop. Launch grid
    (cdiv(M, BLOCK_M), cdiv(C, BLOCK_C))."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rm < M)[:, None] & (rc < C)[None, :]
    v = tl.load(x_ptr + rm[:, None] * ld_x + rc[None, :], mask=mask, other=0.0).to(tl.float32)
    s_offs = (rm // rows_per_s)[:, None] * ld_s + (rc * col_step)[None, :]
    s = tl.load(s_ptr + s_offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], (v * s).to(y_ptr.dtype.element_ty), mask=mask)


def multiply_launch(node: str, x: View, s: View, y: View, *, rows_per_s: int, col_step: int) -> Launch:
    block_m, block_c = row_blocks(x.rows, x.cols, gpu_elements=4096, gpu_max_cols=128)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(x.rows, cfg["BLOCK_M"]), triton.cdiv(x.cols, cfg["BLOCK_C"]))

    args = (x.ptr, s.ptr, y.ptr, x.rows, x.cols, rows_per_s, col_step, x.ld, s.ld, y.ld)
    return Launch(node, multiply_kernel, grid, args, {}, {"BLOCK_M": block_m, "BLOCK_C": block_c}, out=y)
