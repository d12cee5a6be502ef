"""Depthwise convolution: groups == input channels C, out_channels O = MULT * C (MULT is 1 in MobileNet,
EfficientNet and ConvNeXt), so output channel o filters input channel o // MULT alone. There is nothing to
reduce over channels: each output element is a sum over the kernel's taps, done with fp32 FMAs.

Shapes and layout: x is channels-last, a [N*D*H*W pixels, C] matrix (row stride ld_x); y is
[N*OD*OH*OW, O] (row stride ld_y); the weight is packed as [KD, KH, KW, O] (one row of O per tap).

Tiling: each program owns a [BLOCK_P output pixels, BLOCK_C output channels] tile. It decodes its pixels'
window origins once, then walks the KD*KH*KW taps (a runtime loop: unrolling 49 taps of a 7x7 kernel
spilled registers on sm_90); per tap it
loads one [BLOCK_P, BLOCK_C] slab of x (consecutive channels: coalesced) and one BLOCK_C row of weights,
and accumulates their product. Pixels whose tap falls in the zero padding are masked to 0. The shared
epilogue tail (bias, fused activations / residual adds, one store) finishes the tile.

Launch: grid = (cdiv(pixels, BLOCK_P), cdiv(O, BLOCK_C)).

    launch = conv_depthwise_launch("conv1", geo, x, w, bias, y, residuals, codes, params)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import row_blocks, window_origin, window_tap
from convc.backends.triton.epilogue import epilogue_meta, finish_tile
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError

# GPU tile: 2048 outputs, 32 pixels x 64 channels or more pixels when there are fewer channels (at 4096 a
# 128 x 32 fp32 tile reached the 128-register bound and spilled 8 bytes on sm_90).
GPU_TILE_ELEMENTS = 2048
GPU_MAX_CHANNELS = 64
NUM_WARPS = 4


@triton.jit
def conv_depthwise_kernel(
    # pointers: input [pixels, C], packed weight [KD, KH, KW, O], bias [O], output [pixels', O], residuals
    x_ptr, w_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes: output pixels, output channels, filters per input channel, input and output volumes
    P, OC, MULT, D, H, W, OD, OH, OW, KD, KH, KW,
    # window: stride, low padding and dilation per axis
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    # strides: elements between consecutive pixels of x, y and the residuals
    ld_x, ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, EpilogueStep codes, 64-bit offsets, tile
    HAS_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    WIDE: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """y[p, o] = epilogue(bias[o] + sum over taps t of x[window(p, t), o // MULT] * w[t, o]) for one
    [BLOCK_P pixels, BLOCK_C channels] tile; OC is the number of output channels."""
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    rp = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    rc = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    p_ok = rp < P
    c_ok = rc < OC
    in_channel = rc // MULT

    nb, id0, ih0, iw0 = window_origin(rp, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w)

    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for kd in range(KD):
        for kh in range(KH):
            for kw in range(KW):
                pix, inside = window_tap(nb, id0, ih0, iw0, kd, kh, kw, dil_d, dil_h, dil_w, D, H, W)
                ok = p_ok & inside
                if WIDE:
                    pix = pix.to(tl.int64)
                x_tile = tl.load(x_ptr + pix[:, None] * ld_x + in_channel[None, :],
                                 mask=ok[:, None] & c_ok[None, :], other=0.0).to(tl.float32)
                w_row = tl.load(w_ptr + ((kd * KH + kh) * KW + kw) * OC + rc, mask=c_ok, other=0.0)
                acc += x_tile * w_row.to(tl.float32)[None, :]

    finish_tile(acc, rp, rc, p_ok, c_ok, bias_ptr, y_ptr, ld_y, r0_ptr, ld_r0, r1_ptr, ld_r1,
                epi_param0, epi_param1, epi_param2, epi_param3,
                HAS_BIAS, EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3, WIDE)


def depthwise_config(pixels: int, channels: int) -> dict[str, Any]:
    """BLOCK_P x BLOCK_C: 32 x 64 on the GPU (2048 outputs; more pixels when there are fewer channels);
    under the interpreter the largest tile it allows (interpreted programs cost per op, not per element)."""
    block_p, block_c = row_blocks(pixels, channels, gpu_elements=GPU_TILE_ELEMENTS,
                                  gpu_max_cols=GPU_MAX_CHANNELS)
    return {"BLOCK_P": block_p, "BLOCK_C": max(block_c, 16), "num_warps": NUM_WARPS}


def conv_depthwise_launch(node: str, geo: ConvGeometry, x: View, w: torch.Tensor, bias: torch.Tensor | None,
                          y: View, residuals: list[View], codes: tuple[int, ...], params: tuple[float, ...]
                          ) -> Launch:
    """The launch of one depthwise conv; `w` is the [KD, KH, KW, 1, O] packing of
    backends/triton/packing.py (pack_conv_direct with one channel per group)."""
    if geo.groups != geo.c or geo.o % geo.c:
        raise BackendError(f"node '{node}': conv algorithm 'depthwise' needs groups equal to the {geo.c} "
                           f"input channels and out_channels a multiple of them; got groups={geo.groups}, "
                           f"out_channels={geo.o}; use 'direct' or 'implicit_gemm'")
    expected_w = geo.kernel + (1, geo.o)
    if tuple(w.shape) != expected_w:
        raise BackendError(f"node '{node}': packed weight {tuple(w.shape)} differs from {expected_w}")
    expected_views = ((geo.n * geo.d * geo.h * geo.w, geo.c), (geo.out_pixels, geo.o))
    if ((x.rows, x.cols), (y.rows, y.cols)) != expected_views:
        raise BackendError(f"node '{node}': views {x.rows}x{x.cols} -> {y.rows}x{y.cols} do not match {geo}")
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y
    wide = max(v.rows * v.ld for v in (x, y, r0, r1)) >= 2**31
    args = (x.ptr, w, bias if bias is not None else w, y.ptr, r0.ptr, r1.ptr,
            geo.out_pixels, geo.o, geo.o // geo.c, geo.d, geo.h, geo.w, geo.od, geo.oh, geo.ow, *geo.kernel,
            *geo.stride, *geo.pad_lo, *geo.dilation, x.ld, y.ld, r0.ld, r1.ld, *params)
    meta = {"HAS_BIAS": bias is not None, **epilogue_meta(codes), "WIDE": wide}

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(geo.out_pixels, cfg["BLOCK_P"]), triton.cdiv(geo.o, cfg["BLOCK_C"]))

    config = depthwise_config(geo.out_pixels, geo.o)
    return Launch(node, conv_depthwise_kernel, grid, args, meta, config, out=y)
