"""Maxout across channels: y[:, c] = max(x[:, c*k : (c+1)*k]) on channels-last pixel matrices.

    launch = maxout_launch("mo1", x, y, k=2)
"""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from convc.backends.triton.common import max_keep_nan, row_blocks
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def maxout_kernel(
    # pointers: input and output pixel matrices
    x_ptr, y_ptr,
    # sizes: pixels, output channels, input channels per output channel
    M, C_out, K,
    # strides: elements between consecutive pixels of x and y
    ld_x, ld_y,
    # meta: tile
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = max over j < K of x[m, c*K + j], NaN if any of them is NaN.

    Tiles: program (i, j) owns [BLOCK_M pixels, BLOCK_C output channels]; the loop makes K strided loads
    of that tile. Launch grid (cdiv(M, BLOCK_M), cdiv(C_out, BLOCK_C))."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rm < M)[:, None] & (rc < C_out)[None, :]
    rows = x_ptr + rm[:, None] * ld_x
    acc = tl.full((BLOCK_M, BLOCK_C), float("-inf"), tl.float32)
    for j in range(K):
        v = tl.load(rows + (rc * K + j)[None, :], mask=mask, other=float("-inf"))
        acc = max_keep_nan(acc, v.to(tl.float32))  # a NaN input gives NaN, as in torch
    tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


def maxout_launch(node: str, x: View, y: View, *, k: int) -> Launch:
    if y.rows != x.rows or y.cols * k != x.cols:
        raise BackendError(f"node '{node}': maxout k={k} cannot map {x.rows}x{x.cols} to {y.rows}x{y.cols}")
    block_m, block_c = row_blocks(y.rows, y.cols, gpu_elements=2048, gpu_max_cols=64, gpu_min_rows=16)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(y.rows, cfg["BLOCK_M"]), triton.cdiv(y.cols, cfg["BLOCK_C"]))

    return Launch(node, maxout_kernel, grid, (x.ptr, y.ptr, y.rows, y.cols, k, x.ld, y.ld), {},
                  {"BLOCK_M": block_m, "BLOCK_C": block_c}, out=y)
