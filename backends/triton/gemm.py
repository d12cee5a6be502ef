"""Batched GEMM with the fused epilogue: the linear layer, the product half of im2col convolution and the
16 / 36 transform-domain products of Winograd convolution.

Per batch entry g (grid axis 2):  C_g[M, N] = A_g[M, K] @ B_g[K, N]  (+ bias, activations, residuals)
A rows are `lda` apart and batches `stride_ag` apart; B is packed [G, K, N]; C columns of batch g start at
g * stride_cg, so a grouped conv's groups land side by side in one output row.

    launch = gemm_launch("fc1", a, b, bias, c, residuals, codes, params, dot_mode, config)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import dot_acc
from convc.backends.triton.epilogue import apply_epilogue, epilogue_meta
from convc.backends.triton.launch import Launch, View
from convc.errors import BackendError


@triton.jit
def gemm_kernel(
    a_ptr, b_ptr, bias_ptr, c_ptr, r0_ptr, r1_ptr,
    M, N, K,
    lda, stride_ag, stride_bg, ldc, stride_cg, ld_r0, ld_r1, p0, p1, p2, p3,
    HAS_BIAS: tl.constexpr, DOT_MODE: tl.constexpr,
    E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, E3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    batch = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < N

    a_rows = a_ptr + batch * stride_ag + rm.to(tl.int64)[:, None] * lda  # im2col's A can pass 2**31 elements
    b_cols = b_ptr + batch * stride_bg + rn[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        k_ok = kk < K
        a = tl.load(a_rows + kk[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(b_cols + kk[:, None] * N, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = dot_acc(a, b, acc, DOT_MODE)

    ch = batch * stride_cg + rn
    if HAS_BIAS:
        acc += tl.load(bias_ptr + ch, mask=n_ok, other=0.0)[None, :]
    mask = m_ok[:, None] & n_ok[None, :]
    acc = apply_epilogue(acc, rm[:, None], ch[None, :], mask, r0_ptr, ld_r0, r1_ptr, ld_r1, p0, p1, p2, p3,
                         E0, E1, E2, E3)
    tl.store(c_ptr + rm[:, None] * ldc + ch[None, :], acc.to(c_ptr.dtype.element_ty), mask=mask)


def gemm_launch(node: str, a: View, b: torch.Tensor, bias: torch.Tensor | None, c: View, residuals: list[View],
                codes: tuple[int, ...], params: tuple[float, ...], dot_mode: int, config: dict[str, Any], *,
                batches: int = 1, stride_ag: int = 0, separate_outputs: bool = False) -> Launch:
    """Binds C = A @ B (+ epilogue) for `batches` independent products.

    `a` is batch 0's [M, K] matrix (batch g starts stride_ag elements later). By default the batches' outputs
    sit side by side in the columns of `c` (a grouped conv); with `separate_outputs`, `c` is batch 0's [M, N]
    matrix and batch g's is M * ldc elements later (Winograd's products, which take no epilogue)."""
    if b.dim() != 3 or b.shape[0] != batches or b.shape[1] != a.cols:
        raise BackendError(f"node '{node}': B {tuple(b.shape)} does not fit {batches} batches of "
                           f"A {a.rows}x{a.cols}")
    m, k, n = a.rows, a.cols, int(b.shape[2])
    if c.rows != m or c.cols != (n if separate_outputs else batches * n):
        raise BackendError(f"node '{node}': output {c.rows}x{c.cols} does not fit {batches} x {m}x{n}")
    if separate_outputs and (residuals or bias is not None or any(codes)):
        raise BackendError(f"node '{node}': separate batch outputs take no bias or epilogue")
    stride_cg = m * c.ld if separate_outputs else n
    r0 = residuals[0] if residuals else c
    r1 = residuals[1] if len(residuals) > 1 else c
    args = (a.ptr, b, bias if bias is not None else b, c.ptr, r0.ptr, r1.ptr, m, n, k,
            a.ld, stride_ag, k * n, c.ld, stride_cg, r0.ld, r1.ld, *params)
    meta = {"HAS_BIAS": bias is not None, "DOT_MODE": dot_mode, **epilogue_meta(codes)}

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(m, cfg["BLOCK_M"]), triton.cdiv(n, cfg["BLOCK_N"]), batches)

    out = View(c.storage, c.offset, m * batches, n, c.ld) if separate_outputs and c.ld == n else c
    return Launch(node, gemm_kernel, grid, args, meta, dict(config), family="gemm", out=out,
                  tune_key=(m, n, k, batches, str(b.dtype)))
