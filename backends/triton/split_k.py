"""Split-K: when a layer's output tiles alone would leave most SMs idle, several programs share each
tile's K loop. Each writes fp32 partial sums [SPLIT_K, M, N]; `split_k_reduce_kernel` adds them up and
applies the bias and the epilogue in one pass before the store.

    config = dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, num_warps=4, num_stages=3)
    split = split_k_factor(tiles=100, k_steps=72, config=config, dtype="float16")    # -> 2
    launch = split_k_reduce_launch(node, partials, split, bias, y, residuals, codes, params)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import INTERPRET
from convc.backends.triton.epilogue import epilogue_meta, finish_tile
from convc.backends.triton.launch import Launch, View

SMS = 132  # sm_90 (H100 SXM / H200): the machine split-K fills
# Split-K is on for the GPU; the interpreter gains nothing from more programs (tests turn it on).
ENABLED = not INTERPRET
MIN_STEPS_PER_SPLIT = 4  # K steps each split keeps, so the pipeline still has a loop to overlap
MAX_SPLIT_K = 16
WIDE_EXTENT = 2**31


# CTAs of each tile's split-K variant resident on one sm_90 SM, keyed by estimate_key: the compiled
# kernels' own (registers and shared memory read from the cubins), the fewest over implicit and plain
# GEMM with and without TMA and over triton 3.6.0, 3.8.0 and 3.9.0 (13 of the 60 differ between versions,
# by 1-3). tests/triton/split_ctas_check.py --check recompiles every entry and fails on one above the
# installed triton's; hopper_report_check.py fails a split past one wave of a launch's compiled CTAs.
Key = tuple[str, bool, bool, int, int, int, int, int]
SM90_RESIDENT_CTAS: dict[Key, int] = {
    ("fp16", False, False, 16, 16, 16, 4, 2): 12, ("fp16", False, False, 16, 64, 32, 4, 3): 10,
    ("fp16", False, False, 32, 64, 32, 4, 3): 8, ("fp16", False, False, 64, 64, 32, 4, 5): 5,
    ("fp16", False, False, 64, 64, 64, 4, 4): 3, ("fp16", False, False, 64, 128, 64, 4, 4): 2,
    ("fp16", False, False, 128, 64, 32, 4, 5): 3, ("fp16", False, False, 128, 64, 64, 4, 4): 2,
    ("fp16", False, False, 128, 128, 32, 4, 4): 2, ("fp16", False, False, 128, 128, 64, 4, 3): 2,
    ("fp16", False, False, 128, 128, 64, 8, 3): 2, ("fp16", False, False, 128, 256, 64, 8, 3): 1,
    ("fp16", False, False, 256, 128, 64, 8, 3): 1, ("fp16", False, True, 16, 16, 16, 4, 2): 9,
    ("fp16", False, True, 16, 64, 32, 4, 3): 7, ("fp16", False, True, 32, 64, 32, 4, 3): 4,
    ("fp16", False, True, 64, 64, 32, 4, 5): 3, ("fp16", False, True, 64, 64, 64, 4, 4): 3,
    ("fp16", False, True, 64, 128, 64, 4, 4): 2, ("fp16", False, True, 128, 64, 32, 4, 5): 2,
    ("fp16", False, True, 128, 64, 64, 4, 4): 2, ("fp16", False, True, 128, 128, 32, 4, 4): 2,
    ("fp16", False, True, 128, 128, 64, 4, 3): 2, ("fp16", False, True, 128, 128, 64, 8, 3): 1,
    ("fp16", False, True, 128, 256, 64, 8, 3): 1, ("fp16", False, True, 256, 128, 64, 8, 3): 1,
    ("fp16", True, True, 16, 16, 16, 4, 2): 9, ("fp16", True, True, 32, 64, 32, 4, 3): 5,
    ("fp16", True, True, 64, 64, 32, 4, 4): 3, ("fp16", True, True, 64, 64, 32, 4, 5): 3,
    ("fp16", True, True, 64, 64, 64, 4, 4): 2, ("fp16", True, True, 64, 128, 32, 4, 4): 2,
    ("fp16", True, True, 128, 64, 32, 8, 4): 1, ("fp16", True, True, 128, 128, 64, 8, 3): 1,
    ("fp32", False, False, 16, 16, 16, 4, 2): 9, ("fp32", False, False, 16, 64, 32, 4, 3): 9,
    ("fp32", False, False, 32, 32, 32, 4, 4): 8, ("fp32", False, False, 32, 64, 32, 4, 3): 5,
    ("fp32", False, False, 64, 64, 16, 4, 4): 4, ("fp32", False, False, 64, 64, 32, 4, 3): 4,
    ("fp32", False, False, 64, 128, 32, 4, 3): 3, ("fp32", False, False, 128, 64, 32, 4, 3): 2,
    ("fp32", False, False, 128, 128, 32, 8, 3): 1, ("fp32", False, True, 16, 16, 16, 4, 2): 10,
    ("fp32", False, True, 16, 64, 32, 4, 3): 5, ("fp32", False, True, 32, 32, 32, 4, 4): 8,
    ("fp32", False, True, 32, 64, 32, 4, 3): 3, ("fp32", False, True, 64, 64, 16, 4, 4): 2,
    ("fp32", False, True, 64, 64, 32, 4, 3): 3, ("fp32", False, True, 64, 128, 32, 4, 3): 2,
    ("fp32", False, True, 128, 64, 32, 4, 3): 2, ("fp32", False, True, 128, 128, 32, 8, 3): 1,
    ("fp32", True, True, 16, 16, 16, 4, 2): 9, ("fp32", True, True, 32, 64, 32, 4, 3): 4,
    ("fp32", True, True, 64, 64, 32, 4, 4): 3, ("fp32", True, True, 64, 64, 32, 4, 5): 2,
    ("fp32", True, True, 64, 64, 64, 4, 4): 2, ("fp32", True, True, 64, 128, 32, 4, 4): 2,
    ("fp32", True, True, 128, 64, 32, 8, 4): 1, ("fp32", True, True, 128, 128, 64, 8, 3): 1,
}


def estimate_key(config: dict[str, Any], dtype: str, gather: bool = False, ragged: bool = False) -> Key:
    """(operand class, flat RGB gather, ragged K, BLOCK_M, BLOCK_N, BLOCK_K, warps, stages): what decides
    a GEMM tile's registers and shared memory. fp16 and bf16 share tensor-core code, fp32 runs FMAs; a K
    extent that leaves the last K block partly empty (`ragged`, always so for the gather) compiles to a
    masked pipeline with more registers or fewer stages."""
    kind = "fp32" if dtype == "float32" else "fp16"
    return (kind, gather, ragged or gather, config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"],
            config.get("num_warps", 4), config.get("num_stages", 3))  # (an interpreter tile has neither)


def resident_ctas(config: dict[str, Any], dtype: str, gather: bool = False, ragged: bool = False) -> int:
    """CTAs of a GEMM tile's split-K variant that fit on one SM: the compiled kernels' count for the
    planner's tiles (SM90_RESIDENT_CTAS), else a coarse bound by tile area (128x128 and 128x64: 2,
    64x64: 3, smaller: 4)."""
    found = SM90_RESIDENT_CTAS.get(estimate_key(config, dtype, gather, ragged))
    if found is not None:
        return found
    area = config["BLOCK_M"] * config["BLOCK_N"]
    return 2 if area >= 8192 else 3 if area >= 4096 else 4


def split_k_factor(tiles: int, k_steps: int, config: dict[str, Any], dtype: str, gather: bool = False,
                   ragged: bool = False) -> int:
    """How many programs share each tile's K loop: 1 when the tiles fill one wave of resident CTAs, else
    the most splits that keep the grid within one wave (and MIN_STEPS_PER_SPLIT steps per split), then the
    fewest that give each program as few K steps (ceil(k_steps / split)): fewer partial sums, same time.

    One wave, not the first split past it: 100 tiles of 128x128 (a wave of 2 x 132 CTAs) with 72 K steps
    take 2 splits, 200 CTAs of 36 steps; 3 splits would launch 300 CTAs, 36 of them in a second wave,
    and end after 2 x 24 = 48 steps."""
    wave = SMS * resident_ctas(config, dtype, gather, ragged)
    if not ENABLED or tiles >= wave:
        return 1
    most = max(1, min(wave // tiles, k_steps // MIN_STEPS_PER_SPLIT, MAX_SPLIT_K))
    return triton.cdiv(k_steps, triton.cdiv(k_steps, most))


@triton.jit
def split_k_reduce_kernel(
    # pointers: fp32 partial sums [SPLIT_K, M, N], bias, output, residuals
    part_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes and strides
    M, N, ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, EpilogueStep codes, partial planes, tile, 64-bit offsets
    HAS_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    SPLIT_K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, WIDE: tl.constexpr,
):
    """y[m, n] = epilogue(bias[n] + sum_s part[s, m, n]) over a [BLOCK_M, BLOCK_N] tile."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    mask = m_ok[:, None] & n_ok[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for s in range(SPLIT_K):
        rows = s * M + rm
        if WIDE:
            rows = rows.to(tl.int64)
        acc += tl.load(part_ptr + rows[:, None] * N + rn[None, :], mask=mask, other=0.0)
    finish_tile(acc, rm, rn, m_ok, n_ok, bias_ptr, y_ptr, ld_y, r0_ptr, ld_r0, r1_ptr, ld_r1,
                epi_param0, epi_param1, epi_param2, epi_param3,
                HAS_BIAS, EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3, WIDE)


def split_k_reduce_launch(node: str, partials: View, split_k: int, bias: torch.Tensor | None, y: View,
                          residuals: list[View], codes: tuple[int, ...], params: tuple[float, ...]) -> Launch:
    """The reduction of `split_k` partial-sum planes (each y.rows x y.cols fp32, packed) into y."""
    m, n = y.rows, y.cols
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y
    args = (partials.ptr, bias if bias is not None else partials.ptr, y.ptr, r0.ptr, r1.ptr, m, n, y.ld, r0.ld,
            r1.ld, *params)
    meta = {"HAS_BIAS": bias is not None, **epilogue_meta(codes), "SPLIT_K": split_k,
            "WIDE": split_k * m * n >= WIDE_EXTENT or m * y.ld >= WIDE_EXTENT}
    block = {"BLOCK_M": 32, "BLOCK_N": min(128, triton.next_power_of_2(n)), "num_warps": 4}

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(m, cfg["BLOCK_M"]), triton.cdiv(n, cfg["BLOCK_N"]))

    return Launch(node, split_k_reduce_kernel, grid, args, meta, block, out=y)
