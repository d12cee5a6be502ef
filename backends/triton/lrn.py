"""Local response normalisation across channels, as torch.nn.functional.local_response_norm:

    y[c] = x[c] / (k + alpha / size * Σ_{c' in window(c)} x[c']²) ** beta,
    window(c) = [c - size // 2, c + (size - 1) // 2], zero beyond the channel range.

    launch = lrn_launch("norm1", x, y, size=5, alpha=1e-4, beta=0.75, k=2.0)
"""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from convc.backends.triton.common import row_blocks
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def lrn_kernel(
    # pointers: input and output pixel matrices
    x_ptr, y_ptr,
    # sizes: pixels, channels
    M, C,
    # strides: elements between consecutive pixels of x and y
    ld_x, ld_y,
    # normalisation: window length (channels), alpha / size, beta, k
    SIZE, alpha_over_size, beta, k,
    # meta: tile
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = x[m, c] / (k + alpha / size * Σ x[m, c']²) ** beta over c' in
    [c - SIZE // 2, c + (SIZE - 1) // 2] within [0, C), in fp32.

    Tiles: program (i, j) owns [BLOCK_M pixels, BLOCK_C channels]; the loop makes SIZE loads of the tile
    shifted by one channel each (neighbours of a tile's edge come from the next tile's columns). Launch
    grid (cdiv(M, BLOCK_M), cdiv(C, BLOCK_C))."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_ok = rm < M
    c_ok = rc < C
    rows = x_ptr + rm[:, None] * ld_x
    squares = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for j in range(SIZE):
        cj = rc - SIZE // 2 + j
        ok = m_ok[:, None] & ((cj >= 0) & (cj < C))[None, :]
        v = tl.load(rows + cj[None, :], mask=ok, other=0.0).to(tl.float32)
        squares += v * v
    mask = m_ok[:, None] & c_ok[None, :]
    x = tl.load(rows + rc[None, :], mask=mask, other=0.0).to(tl.float32)
    denom = tl.exp(beta * tl.log(k + alpha_over_size * squares))
    tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], (x / denom).to(y_ptr.dtype.element_ty), mask=mask)


def lrn_launch(node: str, x: View, y: View, *, size: int, alpha: float, beta: float, k: float) -> Launch:
    if (y.rows, y.cols) != (x.rows, x.cols):
        raise BackendError(f"node '{node}': output {y.rows}x{y.cols} differs from the input {x.rows}x{x.cols}")
    block_m, block_c = row_blocks(x.rows, x.cols, gpu_elements=2048, gpu_max_cols=64, gpu_min_rows=16)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(x.rows, cfg["BLOCK_M"]), triton.cdiv(x.cols, cfg["BLOCK_C"]))

    args = (x.ptr, y.ptr, x.rows, x.cols, x.ld, y.ld, size, alpha / size, beta, k)
    return Launch(node, lrn_kernel, grid, args, {}, {"BLOCK_M": block_m, "BLOCK_C": block_c},
                  out=y)
