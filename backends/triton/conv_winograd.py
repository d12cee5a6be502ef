"""Winograd convolution F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2015):  Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A.

  1. filters: U = G g Gᵀ at compile time in float64, packed [t*t, C, O] in the compute dtype;
  2. input transform (kernel below): each t x t input tile d of each channel becomes V = Bᵀ d B, computed
     in fp32 with the adds of winograd_transforms.py (Bᵀ down each column, then along each row: 144 fp32
     operations per F(4x4) tile and channel), stored as t*t planes [t*t, tiles, C];
  3. the t*t products M_ξ = V_ξ @ U_ξ ([tiles, C] x [C, O]) on the batched GEMM of gemm.py, fp32 out;
  4. output transform (kernel below): Y = Aᵀ M A, again two passes of adds (100 operations per F(4x4) tile
     and output channel), fused with bias, activations and residual adds before the m*m stores.
Transforms stay in fp32 because F(4x4)'s input transform grows values (REFERENCE.md); only the GEMM
operands are fp16 / bf16.

Layout: a transform program owns BLOCK_P rows p = tile * C + c (tile-major, channel fastest), so each of
its t*t loads and stores is one coalesced [BLOCK_P] vector of consecutive channels; a row's t*t values
never leave its thread (no shared memory, no tl.dot).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from convc.backends.triton import common
from convc.backends.triton.common import INTERPRET, interpreter_block
from convc.backends.triton.epilogue import apply_epilogue, epilogue_meta
from convc.backends.triton.gemm import gemm_launch
from convc.backends.triton.geometry import ConvGeometry
from convc.backends.triton.launch import Launch, View
from convc.backends.triton.winograd_transforms import G, column, input_pass, output_pass
from convc.errors import BackendError
from convc.ir import Node

ALGO_TILE = {"winograd_2x2": 2, "winograd_4x4": 4}
# Rows (tile, channel pairs) per program and warps of the transforms: one row per thread keeps a tile's
# t*t fp32 values in registers (F(4x4) on sm_90: 56 registers in, 40 out, no spills).
BLOCK_P = 128
NUM_WARPS = 4


@triton.jit
def _input_line(x_ptr, pixel_row, iw0, c, row_ok, W, ld_x, TILE_IN: tl.constexpr):
    """The t input values of one tile row (zeros in the padding) for each (tile, channel) row, as a tuple
    of [BLOCK_P] fp32 tensors: pixel_row = index of the row's first pixel (n * H + ih) * W."""
    if TILE_IN == 4:
        return (_input_value(x_ptr, pixel_row, iw0, 0, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 1, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 2, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 3, c, row_ok, W, ld_x))
    else:
        return (_input_value(x_ptr, pixel_row, iw0, 0, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 1, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 2, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 3, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 4, c, row_ok, W, ld_x),
                _input_value(x_ptr, pixel_row, iw0, 5, c, row_ok, W, ld_x))


@triton.jit
def _input_value(x_ptr, pixel_row, iw0, b: tl.constexpr, c, row_ok, W, ld_x):
    iw = iw0 + b
    ok = row_ok & (iw >= 0) & (iw < W)
    return tl.load(x_ptr + (pixel_row + iw) * ld_x + c, mask=ok, other=0.0).to(tl.float32)


@triton.jit
def winograd_input_kernel(
    # pointers: input pixel matrix, V [t*t, tiles * C] (planes of P rows)
    x_ptr, v_ptr,
    # sizes: rows (tiles * C), channels, input height / width, tiles per column / row
    P, C, H, W, TH, TW,
    # window: low padding; stride: elements between consecutive pixels of x
    pad_h, pad_w, ld_x,
    # meta: output tile m, input tile t = m + 2, rows per program
    TILE_OUT: tl.constexpr, TILE_IN: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """V[(i, j), tile, c] = (Bᵀ d B)[i, j] for rows p = tile * C + c, where d is the t x t input patch (zeros
    in the padding) that output tile `tile` reads from channel c.

    Tiles: program k owns rows k*BLOCK_P ..; it loads each patch row a (t coalesced [BLOCK_P] loads) and
    applies Bᵀ along it (d B), then applies Bᵀ down each column of the result and stores plane i*t + j at
    (i*t + j) * P + p: the pointer advances by P per plane, so planes past 2**31 elements need no 64-bit
    index math. Launch grid (cdiv(P, BLOCK_P),)."""
    rp = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = rp < P
    c = rp % C
    tile = rp // C
    tw = tile % TW
    th = (tile // TW) % TH
    nb = tile // (TW * TH)
    ih0 = th * TILE_OUT - pad_h
    iw0 = tw * TILE_OUT - pad_w
    # d B: one 1-D pass along each of the t patch rows.
    rows = (input_pass(_input_line(x_ptr, (nb * H + ih0) * W, iw0, c, p_ok & (ih0 >= 0) & (ih0 < H),
                                   W, ld_x, TILE_IN), TILE_OUT),)
    for a in tl.static_range(1, TILE_IN):
        ih = ih0 + a
        line = _input_line(x_ptr, (nb * H + ih) * W, iw0, c, p_ok & (ih >= 0) & (ih < H), W, ld_x, TILE_IN)
        rows = rows + (input_pass(line, TILE_OUT),)
    # Bᵀ (d B): one pass down each column j, giving V[:, j]; planes are stored in order i * t + j.
    cols = (input_pass(column(rows, 0, TILE_IN), TILE_OUT),)
    for j in tl.static_range(1, TILE_IN):
        cols = cols + (input_pass(column(rows, j, TILE_IN), TILE_OUT),)
    out = v_ptr + rp
    for i in tl.static_range(TILE_IN):
        for j in tl.static_range(TILE_IN):
            tl.store(out, cols[j][i].to(v_ptr.dtype.element_ty), mask=p_ok)
            out += P


@triton.jit
def _finish_pixel(
    acc, nb, oh, ow, o, p_ok, OH, OW, y_ptr, ld_y, r0_ptr, ld_r0, r1_ptr, ld_r1,
    epi_param0, epi_param1, epi_param2, epi_param3,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
):
    """The epilogue and store of one output pixel (oh, ow) of each row's tile; pixels past OH / OW (the
    partial tiles at the bottom and right edges) are masked."""
    mask = p_ok & (oh < OH) & (ow < OW)
    pix = (nb * OH + oh) * OW + ow
    acc = apply_epilogue(acc, pix, o, mask, r0_ptr, ld_r0, r1_ptr, ld_r1,
                         epi_param0, epi_param1, epi_param2, epi_param3,
                         EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3)
    tl.store(y_ptr + pix * ld_y + o, acc.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def winograd_output_kernel(
    # pointers: fp32 products M [t*t, tiles * O] (planes of P rows), bias, output, residuals
    m_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes: rows (tiles * O), output channels, output height / width, tiles per column / row
    P, O, OH, OW, TH, TW,
    # strides: elements between consecutive pixels of y and the residuals
    ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, EpilogueStep codes, output tile m, input tile t = m + 2, rows per program
    HAS_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    TILE_OUT: tl.constexpr, TILE_IN: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """Y[tile, o] = Aᵀ M[:, :, tile, o] A (an m x m output tile), then bias and the epilogue, for rows
    p = tile * O + o; output pixels past OH / OW are masked.

    Tiles: program k owns rows k*BLOCK_P ..; it loads the t*t planes row by row (plane a*t + b at
    (a*t + b) * P + p, the pointer advancing by P), applies Aᵀ along each row (M A), then down each of the
    m columns, and finishes each of the m*m pixels with the shared epilogue and one coalesced store.
    Launch grid (cdiv(P, BLOCK_P),)."""
    rp = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = rp < P
    o = rp % O
    tile = rp // O
    tw = tile % TW
    th = (tile // TW) % TH
    nb = tile // (TW * TH)
    planes = m_ptr + rp
    rows = (output_pass(_product_line(planes, P, p_ok, TILE_IN), TILE_OUT),)
    for a in tl.static_range(1, TILE_IN):
        for b in tl.static_range(TILE_IN):
            planes += P
        rows = rows + (output_pass(_product_line(planes, P, p_ok, TILE_IN), TILE_OUT),)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + o, mask=p_ok, other=0.0).to(tl.float32)
    for j in tl.static_range(TILE_OUT):
        y = output_pass(column(rows, j, TILE_IN), TILE_OUT)
        for i in tl.static_range(TILE_OUT):
            acc = y[i]
            if HAS_BIAS:
                acc += bias
            _finish_pixel(acc, nb, th * TILE_OUT + i, tw * TILE_OUT + j, o, p_ok, OH, OW, y_ptr, ld_y,
                          r0_ptr, ld_r0, r1_ptr, ld_r1, epi_param0, epi_param1, epi_param2, epi_param3,
                          EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3)


@triton.jit
def _product_line(planes, P, p_ok, TILE_IN: tl.constexpr):
    """t consecutive fp32 product planes (one row of the t x t tile) for each row p, from `planes` on,
    P elements apart (pointer steps: no 64-bit offsets needed past 2**31 elements)."""
    m0 = tl.load(planes, mask=p_ok, other=0.0)
    m1 = tl.load(planes + P, mask=p_ok, other=0.0)
    m2 = tl.load(planes + P + P, mask=p_ok, other=0.0)
    m3 = tl.load(planes + P + P + P, mask=p_ok, other=0.0)
    if TILE_IN == 4:
        return m0, m1, m2, m3
    else:
        m4 = tl.load(planes + P + P + P + P, mask=p_ok, other=0.0)
        return m0, m1, m2, m3, m4, tl.load(planes + P + P + P + P + P, mask=p_ok, other=0.0)


def check_winograd(node: Node, geo: ConvGeometry) -> None:
    """Winograd F(m x m, 3x3) needs a 2D 3x3 kernel, stride 1, dilation 1 and one group."""
    problems = []
    if geo.ndim != 2 or geo.kernel[1:] != (3, 3):
        problems.append(f"kernel {node.attrs['kernel']} (needs 3x3 in 2D)")
    if geo.stride != (1, 1, 1):
        problems.append(f"stride {node.attrs['stride']} (needs 1)")
    if geo.dilation != (1, 1, 1):
        problems.append(f"dilation {node.attrs['dilation']} (needs 1)")
    if geo.groups != 1:
        problems.append(f"groups={geo.groups} (needs 1)")
    if problems:
        raise BackendError(f"node '{node.name}': algo={node.attrs['algo']!r} does not apply: "
                           f"{', '.join(problems)}; use 'implicit_gemm', 'im2col' or 'direct'")


class WinogradPlan:
    """Sizes and compile-time constants of one Winograd layer; `scratch_*` are the planner's requests."""

    def __init__(self, geo: ConvGeometry, tile_out: int) -> None:
        self.geo = geo
        self.m = tile_out
        self.t = tile_out + 2
        self.tiles_h = triton.cdiv(geo.oh, tile_out)
        self.tiles_w = triton.cdiv(geo.ow, tile_out)
        self.tiles = geo.n * self.tiles_h * self.tiles_w

    @property
    def scratch_v(self) -> int:
        return self.t * self.t * self.tiles * self.geo.c

    @property
    def scratch_m(self) -> int:
        return self.t * self.t * self.tiles * self.geo.o

    def transform_filters(self, w: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
        """U[(a, b), c, o] = (G g Gᵀ)[a, b] in float64, then one cast to the compute dtype."""
        g = np.asarray(G[self.m], np.float64)
        u = np.einsum("ak,ockl,bl->abco", g, np.asarray(w, np.float64).reshape(w.shape[:2] + (3, 3)), g)
        u = u.reshape(self.t * self.t, self.geo.c, self.geo.o).astype(np.float32)
        return torch.from_numpy(u).to(device=device, dtype=dtype).contiguous()


def conv_winograd_launches(node: str, plan: WinogradPlan, x: View, v: View, mws: View, u: torch.Tensor,
                           bias: torch.Tensor | None, y: View, residuals: list[View], codes: tuple[int, ...],
                           params: tuple[float, ...], dot_mode: int, config: dict[str, Any]) -> list[Launch]:
    """`v` (compute dtype) and `mws` (fp32) are planned scratch views of plan.scratch_v / plan.scratch_m."""
    geo, tt = plan.geo, plan.t * plan.t
    if v.rows * v.cols < plan.scratch_v or mws.rows * mws.cols < plan.scratch_m or mws.storage.dtype != torch.float32:
        raise BackendError(f"node '{node}': Winograd scratch buffers are too small or mistyped")
    if tuple(u.shape) != (tt, geo.c, geo.o):
        raise BackendError(f"node '{node}': transformed filters {tuple(u.shape)} differ from {(tt, geo.c, geo.o)}")
    consts = {"TILE_OUT": plan.m, "TILE_IN": plan.t}
    p_in = plan.tiles * geo.c
    p_out = plan.tiles * geo.o
    # Rows per program: under the interpreter as many as a tile's t*t vectors allow.
    block_in = interpreter_block(p_in, common.INTERPRETER_TILE // tt) if INTERPRET else BLOCK_P
    block_out = interpreter_block(p_out, common.INTERPRETER_TILE // tt) if INTERPRET else BLOCK_P

    def grid_in(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(p_in, cfg["BLOCK_P"]),)

    forward = Launch(node, winograd_input_kernel, grid_in,
                     (x.ptr, v.ptr, p_in, geo.c, geo.h, geo.w, plan.tiles_h, plan.tiles_w,
                      geo.pad_lo[1], geo.pad_lo[2], x.ld), consts,
                     {"BLOCK_P": block_in, "num_warps": NUM_WARPS})
    a = View(v.storage, v.offset, plan.tiles, geo.c, geo.c)
    c = View(mws.storage, mws.offset, plan.tiles, geo.o, geo.o)
    [products] = gemm_launch(node, a, u, None, c, [], (0, 0, 0, 0), (0.0,) * 4, dot_mode, config,
                             batches=tt, stride_ag=plan.tiles * geo.c, separate_outputs=True)
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y

    def grid_out(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(p_out, cfg["BLOCK_P"]),)

    backward = Launch(node, winograd_output_kernel, grid_out,
                      (mws.ptr, bias if bias is not None else mws.ptr, y.ptr, r0.ptr, r1.ptr, p_out, geo.o,
                       geo.oh, geo.ow, plan.tiles_h, plan.tiles_w, y.ld, r0.ld, r1.ld, *params),
                      {"HAS_BIAS": bias is not None, **epilogue_meta(codes), **consts},
                      {"BLOCK_P": block_out, "num_warps": NUM_WARPS}, out=y)
    return [forward, products, backward]
