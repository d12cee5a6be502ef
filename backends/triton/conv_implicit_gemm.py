"""Implicit-GEMM convolution: the im2col matrix is never built; each K step gathers its tile on the fly.

GEMM view, per group g:  Y[M = N*OD*OH*OW, O/g] = X_col[M, K = KD*KH*KW*C/g] @ W[K, O/g]
Layout: activations are channels-last pixel matrices (row = pixel, `ld` elements apart); W is packed at
compile time as [g, KD, KH, KW, C/g, O/g], so row k = (kernel position, channel) of the K axis.

The tile loop: program (tile, group, split) owns a [BLOCK_M pixels, BLOCK_N channels] tile of Y and runs
ONE loop over K steps; a step is (kernel position, block of BLOCK_K channels), so Triton software-pipelines
the whole reduction (cp.async / wgmma over 9 x C/BLOCK_K steps for a 3x3 conv) instead of refilling the
pipeline at every kernel position. With few channels (conv1's 3), GATHER_K flattens (position, channel)
into K itself so a BLOCK_K step spans several kernel positions rather than padding 3 channels to 16.
Tiles are visited in groups of GROUP_M row-tiles (grouped order: neighbours share weights in L2). When the
grid would not fill the GPU, SPLIT_K programs share a tile's K steps and write fp32 partial sums that
split_k.py's reduction adds up before the epilogue (bias, activations, residuals) and the store.

    launches = conv_implicit_gemm_launches(node, geo, x, w, bias, y, residuals, codes, params, dot_mode,
                                           config, split_k=1, partials=None)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import dot_acc, grouped_tile, window_origin, window_tap
from convc.backends.triton.epilogue import epilogue_meta, finish_tile
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.backends.triton.split_k import split_k_factor, split_k_reduce_launch
from convc.backends.triton.tma import TMA_WEIGHTS, allowed_tma, tma_modes
from convc.errors import BackendError

GROUP_M = 8  # row-tiles per group of the grouped (L2-friendly) tile order
GATHER_K_CHANNELS = 16  # below this many channels per group, K is gathered as flat (position, channel)
_INT32 = 2**31


@triton.jit
def conv_implicit_gemm_kernel(
    # pointers: input, packed weight, bias, output (or fp32 partial sums), residuals
    x_ptr, w_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes: GEMM rows, channels per group in and out; input, output and kernel volumes
    M, C_g, O_g, D, H, W, OD, OH, OW, KD, KH, KW,
    # window: stride, low padding and dilation per axis
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    # strides: elements between consecutive pixels of x, y and the residuals
    ld_x, ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (leaky_relu's slope, elu's alpha, clip bounds; epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, tensor-core mode, EpilogueStep codes, tile and schedule
    HAS_BIAS: tl.constexpr, DOT_MODE: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr, GATHER_K: tl.constexpr, WIDE: tl.constexpr,
    TMA: tl.constexpr = 0,
):
    """y[m, g*O_g + n] = epilogue(bias + sum_k x_col[m, k] * w[g, k, n]) for one [BLOCK_M, BLOCK_N] tile;
    with SPLIT_K > 1, program (.., .., s) sums every SPLIT_K-th K step into y_ptr = fp32 partials
    [SPLIT_K, M, groups * O_g] and the epilogue waits for split_k_reduce_kernel. TMA bit 1 (tma.py): the
    weight tiles arrive through a tensor descriptor of the group's packed weight, [positions, C_g, O_g]
    (flat [positions * C_g, O_g] when gathering), zero-filled past C_g and O_g as the masks would."""
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, O_g, BLOCK_M, BLOCK_N, GROUP_M)
    group = tl.program_id(1)
    split = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < O_g

    # Output pixel -> (n, od, oh, ow) -> first input pixel of its receptive field (may be in the padding).
    nb, id0, ih0, iw0 = window_origin(rm, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w)
    if WIDE:  # an extent passes 2**31 elements: pixel offsets in 64 bits
        nb = nb.to(tl.int64)
    x_group = x_ptr + group * C_g
    w_group = w_ptr + group.to(tl.int64) * (KD * KH * KW * C_g * O_g)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if GATHER_K:
        # K = (kernel position, channel) flattened: each column of the A tile decodes its own position.
        K = KD * KH * KW * C_g
        if TMA & 1:
            w_flat = tl.make_tensor_descriptor(w_group, shape=[K, O_g], strides=[O_g, 1],
                                               block_shape=[BLOCK_K, BLOCK_N])
        for k0 in range(split * BLOCK_K, K, BLOCK_K * SPLIT_K):
            kk = k0 + rk
            k_ok = kk < K
            c = kk % C_g
            pos = kk // C_g
            kd, kh, kw = pos // (KH * KW), pos // KW % KH, pos % KW
            pix, inside = window_tap(nb[:, None], id0[:, None], ih0[:, None], iw0[:, None], kd[None, :],
                                     kh[None, :], kw[None, :], dil_d, dil_h, dil_w, D, H, W)
            ok = m_ok[:, None] & k_ok[None, :] & inside
            a = tl.load(x_group + pix * ld_x + c[None, :], mask=ok, other=0.0)
            if TMA & 1:
                b = w_flat.load([k0, pid_n * BLOCK_N])
            else:
                b = tl.load(w_group + kk[:, None] * O_g + rn[None, :], mask=k_ok[:, None] & n_ok[None, :],
                            other=0.0)
            acc = dot_acc(a, b, acc, DOT_MODE)
    else:
        # One K step = (kernel position, BLOCK_K channels); the single loop is what Triton pipelines.
        c_steps = tl.cdiv(C_g, BLOCK_K)
        if TMA & 1:  # 3-D, so that a step's channel block never runs into the next kernel position's rows
            w_desc = tl.make_tensor_descriptor(w_group, shape=[KD * KH * KW, C_g, O_g],
                                               strides=[C_g * O_g, O_g, 1], block_shape=[1, BLOCK_K, BLOCK_N])
        for step in range(split, KD * KH * KW * c_steps, SPLIT_K):
            pos = step // c_steps
            ck0 = (step - pos * c_steps) * BLOCK_K
            ck = ck0 + rk
            c_ok = ck < C_g
            pix, inside = window_tap(nb, id0, ih0, iw0, pos // (KH * KW), pos // KW % KH, pos % KW,
                                     dil_d, dil_h, dil_w, D, H, W)
            ok = m_ok & inside
            a = tl.load(x_group + pix[:, None] * ld_x + ck[None, :], mask=ok[:, None] & c_ok[None, :], other=0.0)
            if TMA & 1:
                b = w_desc.load([pos, ck0, pid_n * BLOCK_N]).reshape(BLOCK_K, BLOCK_N)
            else:
                b = tl.load(w_group + (pos * C_g + ck)[:, None] * O_g + rn[None, :],
                            mask=c_ok[:, None] & n_ok[None, :], other=0.0)
            acc = dot_acc(a, b, acc, DOT_MODE)

    ch = group * O_g + rn
    if SPLIT_K > 1:  # fp32 partial sums; split_k_reduce_kernel applies the epilogue
        rows = split * M + rm
        if WIDE:
            rows = rows.to(tl.int64)
        tl.store(y_ptr + rows[:, None] * ld_y + ch[None, :], acc, mask=m_ok[:, None] & n_ok[None, :])
    else:
        finish_tile(acc, rm, ch, m_ok, n_ok, bias_ptr, y_ptr, ld_y, r0_ptr, ld_r0, r1_ptr, ld_r1,
                    epi_param0, epi_param1, epi_param2, epi_param3,
                    HAS_BIAS, EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3, WIDE)


def gather_k(geo: ConvGeometry) -> bool:
    """Few channels per group (an RGB first layer): K is gathered as flat (position, channel) pairs."""
    return geo.c_per_group < GATHER_K_CHANNELS and geo.kernel_volume > 1


def tile_sizes(geo: ConvGeometry) -> tuple[int, int, int]:
    """(M, N, K) as the tile configurations see them: K is what one BLOCK_K step walks, the channels
    of one kernel position (or the whole flat K when gathering)."""
    k = geo.kernel_volume * geo.c_per_group if gather_k(geo) else geo.c_per_group
    return geo.out_pixels, geo.o_per_group, k


def k_steps(geo: ConvGeometry, block_k: int) -> int:
    """Iterations of the kernel's K loop for one tile."""
    if gather_k(geo):
        return triton.cdiv(geo.kernel_volume * geo.c_per_group, block_k)
    return geo.kernel_volume * triton.cdiv(geo.c_per_group, block_k)


def split_k_for(geo: ConvGeometry, config: dict[str, Any], dtype: str) -> int:
    """Programs per output tile's K loop (split_k.py): more than one when the tiles underfill the GPU."""
    tiles = (triton.cdiv(geo.out_pixels, config["BLOCK_M"]) * triton.cdiv(geo.o_per_group, config["BLOCK_N"])
             * geo.groups)
    ragged = tile_sizes(geo)[2] % config["BLOCK_K"] != 0
    return split_k_factor(tiles, k_steps(geo, config["BLOCK_K"]), config, dtype, gather_k(geo), ragged)


def wide_offsets(geo: ConvGeometry, x: View, y: View, split_k: int = 1) -> bool:
    """Whether some element offset of this conv can reach 2**31 (then the kernel computes in 64 bits)."""
    extents = (x.rows * x.ld, y.rows * y.ld, split_k * geo.out_pixels * geo.o)
    return max(extents) >= _INT32


def _grid(geo: ConvGeometry, split_k: int) -> Any:
    return lambda cfg: (triton.cdiv(geo.out_pixels, cfg["BLOCK_M"]) * triton.cdiv(geo.o_per_group, cfg["BLOCK_N"]),
                        geo.groups, split_k)


def conv_implicit_gemm_launches(node: str, geo: ConvGeometry, x: View, w: torch.Tensor, bias: torch.Tensor | None,
                                y: View, residuals: list[View], codes: tuple[int, ...], params: tuple[float, ...],
                                dot_mode: int, config: dict[str, Any], split_k: int = 1,
                                partials: View | None = None) -> list[Launch]:
    """Checks the operands against the geometry and binds the launch (plus the split-K reduction when
    split_k > 1: `partials` is a planned fp32 view of split_k * M rows x O columns)."""
    expected_w = (geo.groups,) + geo.kernel + (geo.c_per_group, geo.o_per_group)
    if tuple(w.shape) != expected_w:
        raise BackendError(f"node '{node}': packed weight {tuple(w.shape)} differs from {expected_w}")
    if (x.rows, x.cols) != (geo.n * geo.d * geo.h * geo.w, geo.c) or (y.rows, y.cols) != (geo.out_pixels, geo.o):
        raise BackendError(f"node '{node}': views {x.rows}x{x.cols} -> {y.rows}x{y.cols} do not match {geo}")
    if split_k > 1 and (partials is None or partials.rows * partials.cols < split_k * geo.out_pixels * geo.o):
        raise BackendError(f"node '{node}': split-K {split_k} needs an fp32 partial-sum buffer of "
                           f"{split_k} x {geo.out_pixels} x {geo.o}")
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y
    wide = wide_offsets(geo, x, y, split_k)
    target, ld_target = (partials.ptr, geo.o) if split_k > 1 and partials is not None else (y.ptr, y.ld)
    args = (x.ptr, w, bias if bias is not None else w, target, r0.ptr, r1.ptr,
            geo.out_pixels, geo.c_per_group, geo.o_per_group, geo.d, geo.h, geo.w, geo.od, geo.oh, geo.ow,
            *geo.kernel, *geo.stride, *geo.pad_lo, *geo.dilation, x.ld, ld_target, r0.ld, r1.ld, *params)
    meta = {"HAS_BIAS": bias is not None, "DOT_MODE": dot_mode, **epilogue_meta(codes), "GROUP_M": GROUP_M,
            "SPLIT_K": split_k, "GATHER_K": gather_k(geo), "WIDE": wide}
    key = (*tile_sizes(geo), geo.kernel, geo.groups, split_k, str(w.dtype))
    # Rows of O_g weights; each group's block starts a multiple of O_g elements after the first.
    modes = tma_modes((w, [geo.o_per_group])) & TMA_WEIGHTS
    # A split launch writes partial sums that depend on how BLOCK_K cuts K: it keeps its configuration.
    main = Launch(node, conv_implicit_gemm_kernel, _grid(geo, split_k), args, meta,
                  allowed_tma(config, modes),
                  family="conv_implicit_gemm" if split_k == 1 else None, out=y if split_k == 1 else None,
                  tune_key=key, tma=modes)
    if split_k == 1:
        return [main]
    assert partials is not None
    return [main, split_k_reduce_launch(node, partials, split_k, bias, y, residuals, codes, params)]
