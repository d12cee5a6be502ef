"""Winograd convolution F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2015):  Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A.

  1. filters: U = G g Gᵀ at compile time in float64, packed [t*t, C, O] in the compute dtype;
  2. input transform (kernel below): each t x t input tile d of each channel becomes V = Bᵀ d B, computed
     in fp32 as one tl.dot of the flattened tile with kron(Bᵀ, Bᵀ)ᵀ, stored as [t*t, tiles, C];
  3. the t*t products M_ξ = V_ξ @ U_ξ ([tiles, C] x [C, O]) on the batched GEMM of gemm.py, fp32 out;
  4. output transform (kernel below): Y = Aᵀ M A, again one fp32 tl.dot per block, fused with bias,
     activations and residual adds before the store.
Transforms stay in fp32 because F(4x4)'s input transform grows values (REFERENCE.md); only the GEMM
operands are fp16 / bf16.
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
from convc.errors import BackendError
from convc.ir import Node

# (Bᵀ, G, Aᵀ) per output tile size m; tiles are t = m + 2 wide.
TRANSFORMS: dict[int, tuple[list[list[float]], list[list[float]], list[list[float]]]] = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}
ALGO_TILE = {"winograd_2x2": 2, "winograd_4x4": 4}
INPUT_BLOCK_P = 32  # rows per program of the input transform: 64 spills 5 KB per thread on sm_90 (F(4x4))


@triton.jit
def winograd_input_kernel(
    # pointers: input pixel matrix, kron(Bᵀ, Bᵀ)ᵀ padded to [TT_PAD, TT_PAD] fp32, V [t*t, tiles * C]
    x_ptr, kb_ptr, v_ptr,
    # sizes: rows (tiles * C), channels, input height / width, tiles per column / row
    P, C, H, W, TH, TW,
    # window: low padding; stride: elements between consecutive pixels of x
    pad_h, pad_w, ld_x,
    # meta: output tile m, input tile t = m + 2, t*t padded to a power of 2, rows per program
    TILE_OUT: tl.constexpr, TILE_IN: tl.constexpr, TT_PAD: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """V[ζ, tile, c] = Σ_ξ d[tile, c, ξ] · kron(Bᵀ, Bᵀ)[ζ, ξ] for rows p = tile * C + c, where d[tile, c] is
    the t x t input patch (zeros in the padding) that output tile `tile` reads from channel c, flattened.

    Tiles: program i owns rows i*BLOCK_P .. : it gathers their [BLOCK_P, TT_PAD] patches, multiplies them
    by the transform with one fp32 tl.dot and stores plane ζ of V at ζ * P + p. Launch grid
    (cdiv(P, BLOCK_P),)."""
    rp = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    xi = tl.arange(0, TT_PAD)
    p_ok = rp < P
    c = rp % C
    tile = rp // C
    tw = tile % TW
    th = (tile // TW) % TH
    nb = tile // (TW * TH)
    ih = (th * TILE_OUT - pad_h)[:, None] + (xi // TILE_IN)[None, :]
    iw = (tw * TILE_OUT - pad_w)[:, None] + (xi % TILE_IN)[None, :]
    ok = p_ok[:, None] & (xi < TILE_IN * TILE_IN)[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    d = tl.load(x_ptr + ((nb[:, None] * H + ih) * W + iw) * ld_x + c[:, None], mask=ok, other=0.0)
    kb = tl.load(kb_ptr + xi[:, None] * TT_PAD + xi[None, :])
    v = tl.dot(d.to(tl.float32), kb, input_precision="ieee")
    v_ok = p_ok[:, None] & (xi < TILE_IN * TILE_IN)[None, :]
    # V holds t*t planes of P rows: past 2**31 elements for large layers (VGG-16 F(2x2) at batch 168).
    tl.store(v_ptr + xi[None, :].to(tl.int64) * P + rp[:, None], v.to(v_ptr.dtype.element_ty), mask=v_ok)


@triton.jit
def winograd_output_kernel(
    # pointers: fp32 products M [t*t, tiles * O], kron(Aᵀ, Aᵀ)ᵀ padded, bias, output, residuals
    m_ptr, ka_ptr, bias_ptr, y_ptr, r0_ptr, r1_ptr,
    # sizes: rows (tiles * O), output channels, output height / width, tiles per column / row
    P, O, OH, OW, TH, TW,
    # strides: elements between consecutive pixels of y and the residuals
    ld_y, ld_r0, ld_r1,
    # epilogue: the steps' float parameters (epilogue.py)
    epi_param0, epi_param1, epi_param2, epi_param3,
    # meta: bias, EpilogueStep codes, tile sizes (out m, in t, t*t and m*m padded to powers of 2), block
    HAS_BIAS: tl.constexpr,
    EPI_STEP0: tl.constexpr, EPI_STEP1: tl.constexpr, EPI_STEP2: tl.constexpr, EPI_STEP3: tl.constexpr,
    TILE_OUT: tl.constexpr, TILE_IN: tl.constexpr, TT_PAD: tl.constexpr, MM_PAD: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Y[tile, o, u] = Σ_ξ M[ξ, tile, o] · kron(Aᵀ, Aᵀ)[u, ξ], then bias and the epilogue, for rows
    p = tile * O + o; u runs over the m x m output pixels of the tile (those past OH / OW are masked).

    Tiles: program i owns rows i*BLOCK_P ..: it loads their [BLOCK_P, TT_PAD] transform-domain values,
    multiplies by the transform with one fp32 tl.dot and scatters the [BLOCK_P, MM_PAD] result to the
    output pixels through epilogue.apply_epilogue. Launch grid (cdiv(P, BLOCK_P),)."""
    rp = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    xi = tl.arange(0, TT_PAD)
    u = tl.arange(0, MM_PAD)
    p_ok = rp < P
    o = rp % O
    tile = rp // O
    tw = tile % TW
    th = (tile // TW) % TH
    nb = tile // (TW * TH)
    mv = tl.load(m_ptr + xi[None, :].to(tl.int64) * P + rp[:, None],
                 mask=p_ok[:, None] & (xi < TILE_IN * TILE_IN)[None, :], other=0.0)
    ka = tl.load(ka_ptr + xi[:, None] * MM_PAD + u[None, :])
    acc = tl.dot(mv.to(tl.float32), ka, input_precision="ieee")

    oh = (th * TILE_OUT)[:, None] + (u // TILE_OUT)[None, :]
    ow = (tw * TILE_OUT)[:, None] + (u % TILE_OUT)[None, :]
    mask = p_ok[:, None] & (u < TILE_OUT * TILE_OUT)[None, :] & (oh < OH) & (ow < OW)
    pix = (nb[:, None] * OH + oh) * OW + ow
    if HAS_BIAS:
        acc += tl.load(bias_ptr + o, mask=p_ok, other=0.0)[:, None]
    acc = apply_epilogue(acc, pix, o[:, None], mask, r0_ptr, ld_r0, r1_ptr, ld_r1,
                         epi_param0, epi_param1, epi_param2, epi_param3,
                         EPI_STEP0, EPI_STEP1, EPI_STEP2, EPI_STEP3)
    tl.store(y_ptr + pix * ld_y + o[:, None], acc.to(y_ptr.dtype.element_ty), mask=mask)


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


def _pad_matrix(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), np.float64)
    out[: a.shape[0], : a.shape[1]] = a
    return out


class WinogradPlan:
    """Sizes and compile-time constants of one Winograd layer; `scratch_*` are the planner's requests."""

    def __init__(self, geo: ConvGeometry, tile_out: int) -> None:
        self.geo = geo
        self.m = tile_out
        self.t = tile_out + 2
        self.tiles_h = triton.cdiv(geo.oh, tile_out)
        self.tiles_w = triton.cdiv(geo.ow, tile_out)
        self.tiles = geo.n * self.tiles_h * self.tiles_w
        self.tt_pad = max(16, triton.next_power_of_2(self.t * self.t))
        self.mm_pad = max(16, triton.next_power_of_2(self.m * self.m))

    @property
    def scratch_v(self) -> int:
        return self.t * self.t * self.tiles * self.geo.c

    @property
    def scratch_m(self) -> int:
        return self.t * self.t * self.tiles * self.geo.o

    def transform_filters(self, w: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
        """U[(a, b), c, o] = (G g Gᵀ)[a, b] in float64, then one cast to the compute dtype."""
        g = np.asarray(TRANSFORMS[self.m][1], np.float64)
        u = np.einsum("ak,ockl,bl->abco", g, np.asarray(w, np.float64).reshape(w.shape[:2] + (3, 3)), g)
        u = u.reshape(self.t * self.t, self.geo.c, self.geo.o).astype(np.float32)
        return torch.from_numpy(u).to(device=device, dtype=dtype).contiguous()

    def transform_matrices(self, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """kron(Bᵀ, Bᵀ)ᵀ [tt_pad, tt_pad] and kron(Aᵀ, Aᵀ)ᵀ [tt_pad, mm_pad], zero padded, fp32."""
        bt = np.asarray(TRANSFORMS[self.m][0], np.float64)
        at = np.asarray(TRANSFORMS[self.m][2], np.float64)
        kb = _pad_matrix(np.kron(bt, bt).T, self.tt_pad, self.tt_pad)
        ka = _pad_matrix(np.kron(at, at).T, self.tt_pad, self.mm_pad)
        return (torch.from_numpy(kb.astype(np.float32)).to(device),
                torch.from_numpy(ka.astype(np.float32)).to(device))


def conv_winograd_launches(node: str, plan: WinogradPlan, x: View, v: View, mws: View, u: torch.Tensor,
                           kb: torch.Tensor, ka: torch.Tensor, bias: torch.Tensor | None, y: View,
                           residuals: list[View], codes: tuple[int, ...], params: tuple[float, ...],
                           dot_mode: int, config: dict[str, Any]) -> list[Launch]:
    """`v` (compute dtype) and `mws` (fp32) are planned scratch views of plan.scratch_v / plan.scratch_m."""
    geo, tt = plan.geo, plan.t * plan.t
    if v.rows * v.cols < plan.scratch_v or mws.rows * mws.cols < plan.scratch_m or mws.storage.dtype != torch.float32:
        raise BackendError(f"node '{node}': Winograd scratch buffers are too small or mistyped")
    if tuple(u.shape) != (tt, geo.c, geo.o):
        raise BackendError(f"node '{node}': transformed filters {tuple(u.shape)} differ from {(tt, geo.c, geo.o)}")
    consts = {"TILE_OUT": plan.m, "TILE_IN": plan.t, "TT_PAD": plan.tt_pad}
    p_in = plan.tiles * geo.c
    p_out = plan.tiles * geo.o
    # Rows per program; a row's transform is one [TT_PAD]-wide tile row.
    block_in = interpreter_block(p_in, common.INTERPRETER_TILE // plan.tt_pad) if INTERPRET else INPUT_BLOCK_P
    block_out = interpreter_block(p_out, common.INTERPRETER_TILE // plan.tt_pad) if INTERPRET else 64

    def grid_in(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(p_in, cfg["BLOCK_P"]),)

    forward = Launch(node, winograd_input_kernel, grid_in,
                     (x.ptr, kb, v.ptr, p_in, geo.c, geo.h, geo.w, plan.tiles_h, plan.tiles_w,
                      geo.pad_lo[1], geo.pad_lo[2], x.ld), consts, {"BLOCK_P": block_in})
    a = View(v.storage, v.offset, plan.tiles, geo.c, geo.c)
    c = View(mws.storage, mws.offset, plan.tiles, geo.o, geo.o)
    [products] = gemm_launch(node, a, u, None, c, [], (0, 0, 0, 0), (0.0,) * 4, dot_mode, config,
                             batches=tt, stride_ag=plan.tiles * geo.c, separate_outputs=True)
    r0 = residuals[0] if residuals else y
    r1 = residuals[1] if len(residuals) > 1 else y

    def grid_out(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(p_out, cfg["BLOCK_P"]),)

    backward = Launch(node, winograd_output_kernel, grid_out,
                      (mws.ptr, ka, bias if bias is not None else ka, y.ptr, r0.ptr, r1.ptr, p_out, geo.o,
                       geo.oh, geo.ow, plan.tiles_h, plan.tiles_w, y.ld, r0.ld, r1.ld, *params),
                      {"HAS_BIAS": bias is not None, **epilogue_meta(codes), **consts, "MM_PAD": plan.mm_pad},
                      {"BLOCK_P": block_out}, out=y)
    return [forward, products, backward]
