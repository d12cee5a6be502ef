"""Layer norm over the channels of every pixel (a row of the channels-last pixel matrix), in fp32:
mean, then the biased variance of the centred row, then (x - mean) / sqrt(var + eps) * weight + bias.

    launch = layer_norm_launch("norm", x, y, weight, bias, eps=1e-6)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import row_blocks
from convc.backends.triton.launch import Launch, View


@triton.jit
def layer_norm_kernel(
    # pointers: input, per-channel weight and bias (fp32), output
    x_ptr, w_ptr, b_ptr, y_ptr,
    # sizes: pixels (rows), channels (the normalised length)
    M, C,
    # strides: elements between consecutive pixels of x and y
    ld_x, ld_y,
    # the variance's epsilon
    eps,
    # meta: tile
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = (x[m, c] - mean_m) / sqrt(var_m + eps) * w[c] + b[c], with mean_m and the biased var_m
    over row m's C channels, in fp32.

    Tiles: program i owns BLOCK_M whole rows and walks their channels in blocks of BLOCK_C three times:
    the sums, the squares of the centred values, then normalise and store. Launch grid
    (cdiv(M, BLOCK_M),)."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = rm < M
    rc0 = tl.arange(0, BLOCK_C)
    total = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        rc = c0 + rc0
        mask = m_ok[:, None] & (rc < C)[None, :]
        v = tl.load(x_ptr + rm[:, None] * ld_x + rc[None, :], mask=mask, other=0.0).to(tl.float32)
        total += tl.sum(v, axis=1)
    mean = total / C
    # Two passes (mean, then the squares of the centred values): no cancellation for rows far from 0.
    squares = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        rc = c0 + rc0
        mask = m_ok[:, None] & (rc < C)[None, :]
        v = tl.load(x_ptr + rm[:, None] * ld_x + rc[None, :], mask=mask, other=0.0).to(tl.float32)
        centred = tl.where(mask, v - mean[:, None], 0.0)
        squares += tl.sum(centred * centred, axis=1)
    inv_std = 1.0 / tl.sqrt(squares / C + eps)
    for c0 in range(0, C, BLOCK_C):
        rc = c0 + rc0
        c_ok = rc < C
        mask = m_ok[:, None] & c_ok[None, :]
        v = tl.load(x_ptr + rm[:, None] * ld_x + rc[None, :], mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + rc, mask=c_ok, other=0.0)
        b = tl.load(b_ptr + rc, mask=c_ok, other=0.0)
        out = (v - mean[:, None]) * inv_std[:, None] * w[None, :] + b[None, :]
        tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], out.to(y_ptr.dtype.element_ty), mask=mask)


def layer_norm_launch(node: str, x: View, y: View, weight: torch.Tensor, bias: torch.Tensor, *,
                      eps: float) -> Launch:
    block_m, block_c = row_blocks(x.rows, x.cols, gpu_elements=4096, gpu_max_cols=256)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(x.rows, cfg["BLOCK_M"]),)

    args = (x.ptr, weight, bias, y.ptr, x.rows, x.cols, x.ld, y.ld, float(eps))
    return Launch(node, layer_norm_kernel, grid, args, {}, {"BLOCK_M": block_m, "BLOCK_C": block_c}, out=y)
