"""Batched GEMM with the fused epilogue: the linear layer, the product half of im2col convolution and the
16 / 36 transform-domain products of Winograd convolution.

Optional prologue (A_SCALE): each loaded A tile is multiplied by a per-(image, column) scale before the
product, A[m, k] * S[m // rows_per_scale, k]: a 1x1 conv reading x * s, where s [N, C] is the output of a
squeeze-excitation branch, reads x itself and never has x * s written to memory (passes/fuse_input_scale.py).

Per batch entry g (grid axis 1; axis 0 walks the output tiles in grouped order):  C_g[M, N] = A_g[M, K] @ B_g[K, N]  (+ bias, activations, residuals)
A rows are `lda` apart and batches `stride_ag` apart; B is packed [G, K, N]; C columns of batch g start at
g * stride_cg, so a grouped conv's groups land side by side in one output row.

    [launch] = gemm_launch("fc1", a, b, bias, c, residuals, codes, params, dot_mode, config)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import dot_acc, grouped_tile
from convc.backends.triton.epilogue import epilogue_meta, finish_tile
from convc.backends.triton.launch import Launch, View
from convc.backends.triton.split_k import split_k_reduce_launch
from convc.backends.triton.tma import allowed_tma, tma_modes
from convc.errors import BackendError

GROUP_M = 8  # row-tiles per band of the grouped (L2-friendly) tile order
WIDE_EXTENT = 2**31  # element offsets from here on need 64-bit arithmetic


@triton.jit
def gemm_kernel(
    # pointers: A, packed B, bias, C, residuals, A's scale
    a_ptr, b_ptr, bias_ptr, c_ptr, r0_ptr, r1_ptr, s_ptr,
    # sizes of one product; A rows that share one row of the scale (pixels per image)
    M, N, K, rows_per_scale,
    # strides: A rows and batches, B batches, C rows and batches, residual rows, scale rows
    lda, stride_ag, stride_bg, ldc, stride_cg, ld_r0, ld_r1, ld_s,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, A's scale, tensor-core mode, EpilogueStep codes, tile and tile order
    HAS_BIAS: tl.constexpr, A_SCALE: tl.constexpr, DOT_MODE: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    SPLIT_K: tl.constexpr, WIDE: tl.constexpr,
    TMA: tl.constexpr = 0,
):
    """C[g][m, n] = epilogue(bias + sum_k A[g][m, k] * B[g][k, n]) for one [BLOCK_M, BLOCK_N] tile of batch
    entry g = program_id(1); A is row-major with row stride lda, B is [G, K, N] contiguous, C's batch g
    starts stride_cg elements into each row block. WIDE: offsets in 64 bits (im2col's A and Winograd's
    separate outputs pass 2**31 elements for large layers). SPLIT_K > 1: program (.., .., s) sums every
    SPLIT_K-th K block into c_ptr = fp32 partials [SPLIT_K, M, ldc] for split_k.py's reduction. A_SCALE:
    A[m, k] is read as A[m, k] * S[m // rows_per_scale, k] (one batch entry only). TMA (tma.py): bit 1 reads
    B's tiles through a tensor descriptor of B_g [K, N], bit 2 A's through one of A_g [M, K] (rows lda
    apart); the copy engine zero-fills what lies past K, M or N, as the masks do for pointer loads."""
    pid_m, pid_n = grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    batch = tl.program_id(1)
    split = tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    m_ok = rm < M
    n_ok = rn < N

    a_batch = a_ptr + (batch.to(tl.int64) if WIDE else batch) * stride_ag
    a_rows = a_batch + (rm.to(tl.int64) if WIDE else rm)[:, None] * lda
    b_cols = b_ptr + batch * stride_bg + rn[None, :]
    if TMA & 1:  # one bulk tensor copy per B tile instead of BLOCK_K x BLOCK_N masked loads
        b_desc = tl.make_tensor_descriptor(b_ptr + batch * stride_bg, shape=[K, N], strides=[N, 1],
                                           block_shape=[BLOCK_K, BLOCK_N])
    if TMA & 2:
        a_desc = tl.make_tensor_descriptor(a_batch, shape=[M, K], strides=[lda, 1],
                                           block_shape=[BLOCK_M, BLOCK_K])
    if A_SCALE:
        s_rows = s_ptr + (rm // rows_per_scale)[:, None] * ld_s
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(split * BLOCK_K, K, BLOCK_K * SPLIT_K):
        kk = k0 + rk
        k_ok = kk < K
        if TMA & 2:
            a = a_desc.load([pid_m * BLOCK_M, k0])
        else:
            a = tl.load(a_rows + kk[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        if A_SCALE:  # rounded back to A's dtype, as a separate multiply would have stored it
            s = tl.load(s_rows + kk[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            a = (a.to(tl.float32) * s.to(tl.float32)).to(a.dtype)
        if TMA & 1:
            b = b_desc.load([k0, pid_n * BLOCK_N])
        else:
            b = tl.load(b_cols + kk[:, None] * N, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = dot_acc(a, b, acc, DOT_MODE)

    # Batch g's columns: g * stride_cg (side by side for a grouped conv; Winograd's separate outputs put
    # them stride_cg = M * ldc elements apart).
    ch = (batch.to(tl.int64) if WIDE else batch) * stride_cg + rn
    if SPLIT_K > 1:
        rows = split * M + rm
        if WIDE:
            rows = rows.to(tl.int64)
        tl.store(c_ptr + rows[:, None] * ldc + ch[None, :], acc, mask=m_ok[:, None] & n_ok[None, :])
    else:
        finish_tile(acc, rm, ch, m_ok, n_ok, bias_ptr, c_ptr, ldc, r0_ptr, ld_r0, r1_ptr, ld_r1,
                    epi_param0, epi_param1, epi_param2, epi_param3,
                    HAS_BIAS, EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3, WIDE)


def gemm_launch(node: str, a: View, b: torch.Tensor, bias: torch.Tensor | None, c: View, residuals: list[View],
                codes: tuple[int, ...], params: tuple[float, ...], dot_mode: int, config: dict[str, Any], *,
                batches: int = 1, stride_ag: int = 0, separate_outputs: bool = False, split_k: int = 1,
                partials: View | None = None, a_scale: View | None = None) -> list[Launch]:
    """Binds C = A @ B (+ epilogue) for `batches` independent products: one launch, or with split_k > 1
    the split product into `partials` (fp32, split_k x M x batches * N) and split_k.py's reduction.

    `a` is batch 0's [M, K] matrix (batch g starts stride_ag elements later). By default the batches' outputs
    sit side by side in the columns of `c` (a grouped conv); with `separate_outputs`, `c` is batch 0's [M, N]
    matrix and batch g's is M * ldc elements later (Winograd's products, which take no epilogue).
    `a_scale` ([images, K], one batch entry only): A's rows are read times their image's row of it."""
    if b.dim() != 3 or b.shape[0] != batches or b.shape[1] != a.cols:
        raise BackendError(f"node '{node}': B {tuple(b.shape)} does not fit {batches} batches of "
                           f"A {a.rows}x{a.cols}")
    m, k, n = a.rows, a.cols, int(b.shape[2])
    if c.rows != m or c.cols != (n if separate_outputs else batches * n):
        raise BackendError(f"node '{node}': output {c.rows}x{c.cols} does not fit {batches} x {m}x{n}")
    if separate_outputs and (residuals or bias is not None or any(codes)):
        raise BackendError(f"node '{node}': separate batch outputs take no bias or epilogue")
    split = split_k > 1 and partials is not None
    if split_k > 1 and (partials is None or separate_outputs
                        or partials.rows * partials.cols < split_k * m * batches * n):
        raise BackendError(f"node '{node}': split-K {split_k} needs an fp32 buffer of {split_k} x {m} x "
                           f"{batches * n} and side-by-side outputs")
    if a_scale is not None and (batches != 1 or a_scale.cols != k or a_scale.rows == 0 or m % a_scale.rows):
        raise BackendError(f"node '{node}': input scale {a_scale.rows}x{a_scale.cols} does not fit A {m}x{k} "
                           f"({batches} batch entries)")
    stride_cg = m * c.ld if separate_outputs else n
    r0 = residuals[0] if residuals else c
    r1 = residuals[1] if len(residuals) > 1 else c
    target, ldc = (partials.ptr, batches * n) if split and partials is not None else (c.ptr, c.ld)
    s = a_scale if a_scale is not None else a
    rows_per_scale = m // a_scale.rows if a_scale is not None else 1
    args = (a.ptr, b, bias if bias is not None else b, target, r0.ptr, r1.ptr, s.ptr, m, n, k, rows_per_scale,
            a.ld, stride_ag, k * n, ldc, stride_cg, r0.ld, r1.ld, s.ld, *params)
    extents = (m * a.ld + batches * stride_ag, m * c.ld + batches * stride_cg, batches * k * n,
               split_k * m * ldc)
    meta = {"HAS_BIAS": bias is not None, "A_SCALE": a_scale is not None, "DOT_MODE": dot_mode,
            **epilogue_meta(codes), "GROUP_M": GROUP_M, "SPLIT_K": split_k, "WIDE": max(extents) >= WIDE_EXTENT}
    # Each batch's A and B start stride_ag and K * N elements after the previous one's.
    modes = tma_modes((b, [n, k * n]), (a.ptr, [a.ld, stride_ag]))

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"]), batches, split_k)

    out = View(c.storage, c.offset, m * batches, n, c.ld) if separate_outputs and c.ld == n else c
    # A split launch writes partial sums that depend on how BLOCK_K cuts K: it keeps its configuration.
    product = Launch(node, gemm_kernel, grid, args, meta, allowed_tma(config, modes),
                     family=None if split else "gemm", out=None if split else out,
                     tune_key=(m, n, k, batches, split_k, str(b.dtype)), tma=modes)
    if not split or partials is None:
        return [product]
    return [product, split_k_reduce_launch(node, partials, split_k, bias, c, residuals, codes, params)]
