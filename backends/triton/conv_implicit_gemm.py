"""Implicit-GEMM convolution: the im2col matrix is never built; each K step gathers it on the fly.

GEMM view, per group g:  Y[M = N*OD*OH*OW, O/g] = X_col[M, K = KD*KH*KW*C/g] @ W[K, O/g]
Activations are channels-last pixel matrices; W is packed at compile time as [g, KD, KH, KW, C/g, O/g].
The K loop is nested (kernel position, then channel blocks) rather than one flattened loop: a flattened
(kh, kw, c-block) loop has miscompiled with num_warps=8 (triton-lang/triton#1254).

    launch = conv_implicit_gemm_launch(node, geo, x, w, bias, y, residuals, codes, params, dot_mode, config)
    launch()
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import dot_acc, window_origin
from convc.backends.triton.epilogue import apply_epilogue, epilogue_meta
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def conv_implicit_gemm_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    M, C_g, O_g, D, H, W, OD, OH, OW, KD, KH, KW,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    ld_x, ld_y, ld_r0, ld_r1, p0, p1, p2, p3,
    HAS_BIAS: tl.constexpr, DOT_MODE: tl.constexpr,
    E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, E3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    group = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < O_g

    # Output pixel -> (n, od, oh, ow) -> top-left-front corner of its receptive field.
    nb, id0, ih0, iw0 = window_origin(rm, OD, OH, OW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w)

    x_group = x_ptr + group * C_g
    w_group = w_ptr + group * (KD * KH * KW * C_g * O_g)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kd in range(KD):
        idd = id0 + kd * dil_d
        d_ok = m_ok & (idd >= 0) & (idd < D)
        for kh in range(KH):
            ih = ih0 + kh * dil_h
            h_ok = d_ok & (ih >= 0) & (ih < H)
            for kw in range(KW):
                iw = iw0 + kw * dil_w
                ok = h_ok & (iw >= 0) & (iw < W)
                pix = ((nb * D + idd) * H + ih) * W + iw
                a_rows = x_group + pix[:, None] * ld_x
                w_rows = w_group + ((kd * KH + kh) * KW + kw) * C_g * O_g
                for c0 in range(0, C_g, BLOCK_K):
                    ck = c0 + rk
                    c_ok = ck < C_g
                    a = tl.load(a_rows + ck[None, :], mask=ok[:, None] & c_ok[None, :], other=0.0)
                    b = tl.load(w_rows + ck[:, None] * O_g + rn[None, :], mask=c_ok[:, None] & n_ok[None, :],
                                other=0.0)
                    acc = dot_acc(a, b, acc, DOT_MODE)

    ch = group * O_g + rn
    if HAS_BIAS:
        acc += tl.load(bias_ptr + ch, mask=n_ok, other=0.0)[None, :]
    mask = m_ok[:, None] & n_ok[None, :]
    acc = apply_epilogue(acc, rm[:, None], ch[None, :], mask, r0_ptr, ld_r0, r1_ptr, ld_r1, p0, p1, p2, p3,
                         E0, E1, E2, E3)
    tl.store(y_ptr + rm[:, None] * ld_y + ch[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


def _grid(geo: ConvGeometry) -> Any:
    return lambda cfg: (triton.cdiv(geo.out_pixels, cfg["BLOCK_M"]), triton.cdiv(geo.o_per_group, cfg["BLOCK_N"]),
                        geo.groups)


def conv_implicit_gemm_launch(node: str, geo: ConvGeometry, x: View, w: torch.Tensor, bias: torch.Tensor | None,
                              y: View, residuals: list[View], codes: tuple[int, ...], params: tuple[float, ...],
                              dot_mode: int, config: dict[str, Any]) -> Launch:
    """Checks the operands against the geometry and binds one launch (no allocation: views are planned)."""
    expected_w = (geo.groups,) + geo.kernel + (geo.c_per_group, geo.o_per_group)
    if tuple(w.shape) != expected_w:
        raise BackendError(f"node '{node}': packed weight {tuple(w.shape)} differs from {expected_w}")
    if (x.rows, x.cols) != (geo.n * geo.d * geo.h * geo.w, geo.c) or (y.rows, y.cols) != (geo.out_pixels, geo.o):
        raise BackendError(f"node '{node}': views {x.rows}x{x.cols} -> {y.rows}x{y.cols} do not match {geo}")
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y
    args = (x.ptr, w, bias if bias is not None else w, y.ptr, r0.ptr, r1.ptr,
            geo.out_pixels, geo.c_per_group, geo.o_per_group, geo.d, geo.h, geo.w, geo.od, geo.oh, geo.ow,
            *geo.kernel, *geo.stride, *geo.pad_lo, *geo.dilation, x.ld, y.ld, r0.ld, r1.ld, *params)
    meta = {"HAS_BIAS": bias is not None, "DOT_MODE": dot_mode, **epilogue_meta(codes)}
    # K here is the channel loop that BLOCK_K tiles (the kernel positions are an outer loop).
    key = (geo.out_pixels, geo.o_per_group, geo.c_per_group, geo.kernel, geo.groups, str(w.dtype))
    return Launch(node, conv_implicit_gemm_kernel, _grid(geo), args, meta, dict(config),
                  family="conv_implicit_gemm", out=y, tune_key=key)
