"""Adaptive average pooling to any output size on channels-last pixel matrices, as torch computes it:
output position i of an axis of input size S and output size O averages input positions
[floor(i * S / O), ceil((i + 1) * S / O)), per axis (D, H, W).

    launch = adaptive_avg_pool_launch("avgpool", x, y, n=1, spatial=(1, 7, 7), out_spatial=(1, 3, 3))
"""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from convc.backends.triton.common import decode_pixel, row_blocks, window_tap
from convc.backends.triton.launch import Launch, View


@triton.jit
def adaptive_avg_pool_kernel(
    # pointers: input and output pixel matrices
    x_ptr, y_ptr,
    # sizes: output pixels, channels; input and output volumes; the longest window per axis
    M, C, D, H, W, OD, OH, OW, KD, KH, KW,
    # strides: elements between consecutive pixels of x and y
    ld_x, ld_y,
    # meta: tile
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = mean of x[., c] over output pixel m's window [floor(i * S / O), ceil((i + 1) * S / O))
    per axis; windows differ in length, so every program walks the longest (KD x KH x KW) and masks
    the taps past its own window's end.

    Tiles: program (i, j) owns [BLOCK_M pixels, BLOCK_C channels], one [BLOCK_M, BLOCK_C] load per tap,
    accumulated in fp32. Launch grid (cdiv(M, BLOCK_M), cdiv(C, BLOCK_C))."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_ok = rm < M
    c_ok = rc < C
    nb, od, oh, ow = decode_pixel(rm, OD, OH, OW)
    d0, d1 = (od * D) // OD, ((od + 1) * D + OD - 1) // OD
    h0, h1 = (oh * H) // OH, ((oh + 1) * H + OH - 1) // OH
    w0, w1 = (ow * W) // OW, ((ow + 1) * W + OW - 1) // OW
    acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for kd in range(KD):
        for kh in range(KH):
            for kw in range(KW):
                # Windows start inside the input (no padding): a tap counts while before its window's end.
                pix, _ = window_tap(nb, d0, h0, w0, kd, kh, kw, 1, 1, 1, D, H, W)
                ok = (m_ok & (d0 + kd < d1) & (h0 + kh < h1) & (w0 + kw < w1))[:, None] & c_ok[None, :]
                acc += tl.load(x_ptr + pix[:, None] * ld_x + rc[None, :], mask=ok, other=0.0).to(tl.float32)
    count = ((d1 - d0) * (h1 - h0) * (w1 - w0)).to(tl.float32)
    out = acc / count[:, None]
    tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], out.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & c_ok[None, :])


def longest_window(size: int, out: int) -> int:
    return max(-(-((i + 1) * size) // out) - (i * size) // out for i in range(out))


def adaptive_avg_pool_launch(node: str, x: View, y: View, *, n: int, spatial: tuple[int, int, int],
                             out_spatial: tuple[int, int, int]) -> Launch:
    windows = tuple(longest_window(s, o) for s, o in zip(spatial, out_spatial))
    block_m, block_c = row_blocks(y.rows, y.cols, gpu_elements=2048, gpu_max_cols=128)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(y.rows, cfg["BLOCK_M"]), triton.cdiv(y.cols, cfg["BLOCK_C"]))

    args = (x.ptr, y.ptr, y.rows, y.cols, *spatial, *out_spatial, *windows, x.ld, y.ld)
    return Launch(node, adaptive_avg_pool_kernel, grid, args, {}, {"BLOCK_M": block_m, "BLOCK_C": block_c},
                  out=y)
