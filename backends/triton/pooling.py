"""Max and average pooling (1D / 2D / 3D windows, ceil_mode, count_include_pad) and the global pools,
on channels-last pixel matrices. Windows follow torch: padding counts as -inf for max; an average divides
by the window clipped to the padded input (count_include_pad) or to the input itself.

    launch = window_pool_launch("pool1", geo, x, y, is_max=True, count_include_pad=True)
    launch = global_pool_launch("gap", x, y, positions=49, is_max=False)
"""
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from convc.backends.triton.common import max_keep_nan, max_reduce_keep_nan, row_blocks, window_origin, window_tap
from convc.backends.triton.geometry import PoolGeometry
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def window_pool_kernel(
    # pointers: input and output pixel matrices
    x_ptr, y_ptr,
    # sizes: output pixels, channels; input, output and window volumes
    M, C, D, H, W, OD, OH, OW, KD, KH, KW,
    # window: stride and low padding per axis
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
    # strides: elements between consecutive pixels of x and y
    ld_x, ld_y,
    # meta: max or average, average's divisor, tile
    IS_MAX: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[m, c] = max (IS_MAX) or average of x over output pixel m's KD x KH x KW window, channel c;
    x is the [N*D*H*W, C] and y the [M = N*OD*OH*OW, C] channels-last pixel matrix.

    Tiles: program (i, j) owns [BLOCK_M pixels, BLOCK_C channels]; the loop walks the window's taps
    (common.window_tap), loading one [BLOCK_M, BLOCK_C] slab per tap and accumulating in fp32. Launch grid
    (cdiv(M, BLOCK_M), cdiv(C, BLOCK_C))."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    m_ok = rm < M
    c_ok = rc < C
    nb, d0, h0, w0 = window_origin(rm, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w)

    if not IS_MAX:
        # torch's divisor: the window clipped to the padded input, or to the input proper. Computed
        # before the tap loop: the window origins then die in the loop instead of living through it (kept
        # for after the loop, ptxas spilled them under triton 3.6).
        if COUNT_INCLUDE_PAD:
            dd = tl.minimum(d0 + KD, D + pad_d) - d0
            hh = tl.minimum(h0 + KH, H + pad_h) - h0
            ww = tl.minimum(w0 + KW, W + pad_w) - w0
        else:
            dd = tl.minimum(d0 + KD, D) - tl.maximum(d0, 0)
            hh = tl.minimum(h0 + KH, H) - tl.maximum(h0, 0)
            ww = tl.minimum(w0 + KW, W) - tl.maximum(w0, 0)
        divisor = tl.maximum(dd * hh * ww, 1).to(tl.float32)
    if IS_MAX:
        acc = tl.full((BLOCK_M, BLOCK_C), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    # One loop over the window's taps (not three nested ones): fewer values live through it.
    for tap in range(KD * KH * KW):
        kw = tap % KW
        kh = (tap // KW) % KH
        kd = tap // (KW * KH)
        pix, inside = window_tap(nb, d0, h0, w0, kd, kh, kw, 1, 1, 1, D, H, W)
        ok = (m_ok & inside)[:, None] & c_ok[None, :]
        if IS_MAX:
            v = tl.load(x_ptr + pix[:, None] * ld_x + rc[None, :], mask=ok, other=float("-inf"))
            acc = max_keep_nan(acc, v.to(tl.float32))  # a NaN in the window gives NaN, as in torch
        else:
            v = tl.load(x_ptr + pix[:, None] * ld_x + rc[None, :], mask=ok, other=0.0)
            acc += v.to(tl.float32)

    if not IS_MAX:
        acc = acc / divisor[:, None]
    mask = m_ok[:, None] & c_ok[None, :]
    tl.store(y_ptr + rm[:, None] * ld_y + rc[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def global_pool_kernel(
    # pointers: input and output pixel matrices
    x_ptr, y_ptr,
    # sizes: channels, positions per example
    C, P,
    # strides: elements between consecutive pixels of x and y
    ld_x, ld_y,
    # meta: max or average, tile
    IS_MAX: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[n, c] = max (IS_MAX) or mean of x[n*P + p, c] over the P positions of example n.

    Tiles: program (n, j) owns example n and channels j*BLOCK_C ..; the loop walks the positions in
    blocks of BLOCK_P, keeping a [BLOCK_P, BLOCK_C] fp32 partial that one reduction ends. Launch grid
    (N, cdiv(C, BLOCK_C))."""
    nb = tl.program_id(0)
    rc = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    rp = tl.arange(0, BLOCK_P)
    c_ok = rc < C
    if IS_MAX:
        acc = tl.full((BLOCK_P, BLOCK_C), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for first in range(0, P, BLOCK_P):
        pp = first + rp
        ok = (pp < P)[:, None] & c_ok[None, :]
        offs = (nb * P + pp)[:, None] * ld_x + rc[None, :]
        if IS_MAX:
            acc = max_keep_nan(acc, tl.load(x_ptr + offs, mask=ok, other=float("-inf")).to(tl.float32))
        else:
            acc += tl.load(x_ptr + offs, mask=ok, other=0.0).to(tl.float32)
    if IS_MAX:
        out = max_reduce_keep_nan(acc, 0)
    else:
        out = tl.sum(acc, axis=0) / P
    tl.store(y_ptr + nb * ld_y + rc, out.to(y_ptr.dtype.element_ty), mask=c_ok)


def _blocks(rows: int, channels: int) -> tuple[int, int]:
    return row_blocks(rows, channels, gpu_elements=2048, gpu_max_cols=64, gpu_min_rows=16)


def window_pool_launch(node: str, geo: PoolGeometry, x: View, y: View, *, is_max: bool,
                       count_include_pad: bool = True) -> Launch:
    if (x.rows, x.cols) != (geo.n * geo.d * geo.h * geo.w, geo.c) or (y.rows, y.cols) != (geo.out_pixels, geo.c):
        raise BackendError(f"node '{node}': views {x.rows}x{x.cols} -> {y.rows}x{y.cols} do not match {geo}")
    args = (x.ptr, y.ptr, geo.out_pixels, geo.c, geo.d, geo.h, geo.w, geo.od, geo.oh, geo.ow, *geo.kernel,
            *geo.stride, *geo.pad, x.ld, y.ld)
    block_m, block_c = _blocks(geo.out_pixels, geo.c)

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(geo.out_pixels, cfg["BLOCK_M"]), triton.cdiv(geo.c, cfg["BLOCK_C"]))

    return Launch(node, window_pool_kernel, grid, args, {"IS_MAX": is_max, "COUNT_INCLUDE_PAD": count_include_pad},
                  {"BLOCK_M": block_m, "BLOCK_C": block_c}, out=y)


def global_pool_launch(node: str, x: View, y: View, *, positions: int, is_max: bool) -> Launch:
    batch = x.rows // positions
    if x.rows != batch * positions or (y.rows, y.cols) != (batch, x.cols):
        raise BackendError(f"node '{node}': views {x.rows}x{x.cols} -> {y.rows}x{y.cols} do not match "
                           f"{positions} positions per example")
    block_p, block_c = _blocks(positions, x.cols)
    block_p = min(block_p, triton.next_power_of_2(positions))

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (batch, triton.cdiv(x.cols, cfg["BLOCK_C"]))

    return Launch(node, global_pool_kernel, grid, (x.ptr, y.ptr, x.cols, positions, x.ld, y.ld),
                  {"IS_MAX": is_max}, {"BLOCK_P": block_p, "BLOCK_C": block_c}, out=y)
