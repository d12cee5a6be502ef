"""Direct convolution with fp32 FMAs: depthwise and grouped layers with few channels per group, and first
layers whose 1-4 input channels would leave a tensor-core K block mostly empty.

Each program owns a [BLOCK_M pixels, BLOCK_N output channels] tile and walks the receptive field; an output
channel o reads input channels (o // (O/g)) * (C/g) + c, so depthwise tiles read consecutive channels.
W is packed at compile time as [KD, KH, KW, C/g, O].

    launch = conv_direct_launch(node, geo, x, w, bias, y, residuals, codes, params, config)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import window_origin, window_tap
from convc.backends.triton.epilogue import epilogue_meta, finish_tile
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def conv_direct_kernel(
    # pointers: input, packed weight [KD, KH, KW, C/g, O], bias, output, residuals
    x_ptr, w_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes: output pixels, channels per group in, channels out (all, per group), volumes
    M, C_g, O, O_g, D, H, W, OD, OH, OW, KD, KH, KW,
    # window: stride, low padding and dilation per axis
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    # strides: elements between consecutive pixels of x, y and the residuals
    ld_x, ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, EpilogueStep codes, tile
    HAS_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """y[m, o] = epilogue(bias[o] + sum over the window and o's group of x * w) with fp32 FMAs for one
    [BLOCK_M pixels, BLOCK_N output channels] tile; no tensor cores (few channels per group).

    Tiles: program (i, j) owns pixels i*BLOCK_M .. and output channels n0 = j*BLOCK_N ..; the bias starts
    the fp32 sum, the loops walk taps then the group's channels, the shared epilogue ends the tile. Launch
    grid (cdiv(M, BLOCK_M), cdiv(O, BLOCK_N)).

    Registers: the column offsets are taken from pointers already moved by n0 and the bias is read before
    the loop, so no per-column 64-bit offset lives through the loop into the epilogue: ptxas spilled such
    offsets (8-64 bytes per thread under triton 3.6 and 3.8, sm_90; tests/triton/config_grid_check.py).
    Tiles of more than 32 fp32 sums per thread (64x64 with 2 warps, 128x64 with 4) spill regardless, and 32
    (64x64 with 4 warps) spill 8 bytes in fp16 under triton 3.9: the planner's tiles hold 16."""
    pid_m = tl.program_id(0)
    n0 = tl.program_id(1) * BLOCK_N
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = cols < O - n0
    first_in_channel = ((n0 + cols) // O_g) * C_g

    nb, id0, ih0, iw0 = window_origin(rm, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + n0 + cols, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    for kd in range(KD):
        for kh in range(KH):
            for kw in range(KW):
                pix, inside = window_tap(nb, id0, ih0, iw0, kd, kh, kw, dil_d, dil_h, dil_w, D, H, W)
                x_tile = x_ptr + pix[:, None] * ld_x + first_in_channel[None, :]
                tile_ok = (m_ok & inside)[:, None] & n_ok[None, :]
                w_row = w_ptr + ((kd * KH + kh) * KW + kw) * C_g * O + n0
                for c in range(C_g):
                    xv = tl.load(x_tile + c, mask=tile_ok, other=0.0).to(tl.float32)
                    wv = tl.load(w_row + c * O + cols, mask=n_ok, other=0.0).to(tl.float32)
                    acc += xv * wv[None, :]

    finish_tile(acc, rm, cols, m_ok, n_ok, bias_ptr, y_ptr + n0, ld_y, r0_ptr + n0, ld_r0, r1_ptr + n0, ld_r1,
                epi_param0, epi_param1, epi_param2, epi_param3,
                False, EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3, False)


def conv_direct_launch(node: str, geo: ConvGeometry, x: View, w: torch.Tensor, bias: torch.Tensor | None,
                       y: View, residuals: list[View], codes: tuple[int, ...], params: tuple[float, ...],
                       config: dict[str, Any]) -> Launch:
    expected_w = geo.kernel + (geo.c_per_group, geo.o)
    if tuple(w.shape) != expected_w:
        raise BackendError(f"node '{node}': packed weight {tuple(w.shape)} differs from {expected_w}")
    if (x.rows, x.cols) != (geo.n * geo.d * geo.h * geo.w, geo.c) or (y.rows, y.cols) != (geo.out_pixels, geo.o):
        raise BackendError(f"node '{node}': views {x.rows}x{x.cols} -> {y.rows}x{y.cols} do not match {geo}")
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y
    args = (x.ptr, w, bias if bias is not None else w, y.ptr, r0.ptr, r1.ptr,
            geo.out_pixels, geo.c_per_group, geo.o, geo.o_per_group, geo.d, geo.h, geo.w, geo.od, geo.oh, geo.ow,
            *geo.kernel, *geo.stride, *geo.pad_lo, *geo.dilation, x.ld, y.ld, r0.ld, r1.ld, *params)
    meta = {"HAS_BIAS": bias is not None, **epilogue_meta(codes)}

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(geo.out_pixels, cfg["BLOCK_M"]), triton.cdiv(geo.o, cfg["BLOCK_N"]))

    key = (geo.out_pixels, geo.o, geo.kernel_volume * geo.c_per_group, geo.kernel, geo.groups, str(w.dtype))
    return Launch(node, conv_direct_kernel, grid, args, meta, dict(config), family="conv_direct", out=y,
                  tune_key=key)
