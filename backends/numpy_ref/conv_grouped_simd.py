"""Grouped 3x3 convolution as a register-blocked micro-kernel with explicit SIMD vectors (simd.py): the
"direct" algorithm of a 2D conv with 3x3 kernels whose groups hold 8 or more input channels each
(RegNet-X/Y, ResNeXt; narrower groups: conv_grouped_jit.py).

NCHW in, NCHW out. Per image and group, each of the group's Cg input planes is copied zero-padded so
that tap t of output position f reads copy[ci, start[t] + f] (conv_grouped_layout.Geometry): at stride 1
(up to 32 columns) three column-shifted copies, f = y * OW + x running densely over the plane; otherwise
the stride phases (conv_depthwise_jit.fill_phases), f along "wide" rows with dead padding columns. The
weights are packed once per layer (conv_grouped_layout.packed_weights, cached with the weight array):
per group, blocks of R = 4 output channels (the last zero-padded), each laid out (Cg, 9, R) so one
(channel, tap) step reads R consecutive values. The tile loop, per group, chunk of positions whose input
stays in L2 (CHUNK_BYTES), block of R output channels, and run of V = 4 vectors of positions (64 float32
or 32 float64; the chunk's last positions one vector at a time):

    acc[r][v] = splat(bias[k0 + r])                                  # R x V = 16 vector registers
    for ci < Cg, t < 9:                                              # all Cg * 9 steps in registers
        x_v = load(copy, ci, start[t] + f0 + v * lanes)              # V loads
        acc[r][v] = fma(splat(wp[g, block, ci, t, r]), x_v, acc[r][v])   # R splats, R * V FMAs
    sums[k0 + r, f0 + v * lanes :] = acc[r][v]

then each output plane of the group is cropped from `sums` into `out` and the epilogue (activations,
residual adds: epilogue_jit.apply_steps) runs on it while it is in the cache. Each input vector loaded
feeds R FMAs and each weight splat V; the sums never leave the registers. The padding is real zeros, so
0 * inf gives NaN as in torch; only contraction into FMA is allowed (jit.OPTIONS).

    y = conv_grouped_simd(conv)    # conv: ConvOperands; applicable(conv) and jit.enabled_for(dtype)
"""
from __future__ import annotations

import numpy as np

from convc.backends.numpy_ref import epilogue_jit, jit, simd
from convc.backends.numpy_ref.conv_depthwise_jit import fill_phases
from convc.backends.numpy_ref.conv_grouped_layout import R, V, Geometry, fill_shifted, packed_weights
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue_jit import apply_steps
from convc.backends.numpy_ref.scratch import scratch

# The narrowest groups (input channels per group) the kernel takes. On narrower ones a run of positions
# has few steps (Cg * 9) for its 16 stores and conv_grouped_jit.py (its rows in L1, all output channels
# per block of rows) was as fast: on ResNeXt's groups of 4, 0.61 ms against 0.60 (128 x 56 x 56); on
# groups of 8 this kernel was 0.86-1.16x the loop's time on 9 layers (slower only on RegNet-Y 400MF's
# 48 x 112 x 112 stride 2), from 16 up 0.5-0.99x (bench/NOTES.md, grouped).
MIN_GROUP_CHANNELS = 8


@jit.kernel
def grouped3x3_simd(x: np.ndarray, wp: np.ndarray, bias: np.ndarray, out: np.ndarray, dense: bool,
                    grid_h: int, grid_w: int, stride_h: int, stride_w: int, dil_w: int, top: int, left: int,
                    starts: np.ndarray, chunk: int, codes: np.ndarray, params: np.ndarray, single: bool,
                    res0: np.ndarray, res1: np.ndarray,
                    phased: np.ndarray, line: np.ndarray, wide: np.ndarray) -> None:
    """out[n, o] for every image n and output channel o of a grouped conv with 3x3 kernels.

    Pointers: x (N, C, H, W); wp (G, B, Cg, 9, R): the packed weights, B = ceil(Kg / R) blocks of R
    output channels per group, zeros past Kg; bias (G, B * R), zeros past Kg; out (N, K, OH, OW); all
    C-contiguous of one dtype. dense: stride 1, the input as column-shifted copies (fill_shifted) of
    grid_h rows of grid_w = OW, else as stride phases of a grid_h x grid_w grid (fill_phases); strides,
    the column dilation and the low padding: given; starts (9): each tap's offset into a phased channel
    (Geometry.starts);
    chunk: wide positions per chunk (a multiple of V vectors: Geometry.chunk).
    res0, res1: residuals flattened (out.size elements each) or empty. Meta: codes and params, the
    epilogue's steps (epilogue_jit.encode); single: float32 (its exp). Scratch: phased (Cg,
    Geometry.channel), line (fill_phases' row buffer, zeros), wide (B * R, Geometry.run)."""
    groups, blocks, in_group = wp.shape[0], wp.shape[1], wp.shape[2]
    out_group = out.shape[1] // groups
    out_h, out_w = out.shape[2], out.shape[3]
    plane_out = out_h * out_w
    channel = phased.shape[1]
    lanes = simd.lanes(out)
    step = V * lanes
    run = ((out_h - 1) * grid_w + out_w + lanes - 1) // lanes * lanes  # the positions, whole vectors
    width = wide.shape[1]
    phased[:] = 0  # the padding of every channel's copy (fill_phases writes only the inside)
    for n in range(x.shape[0]):
        for g in range(groups):
            for ci in range(in_group):
                if dense:
                    fill_shifted(x[n, g * in_group + ci], phased[ci], grid_h, grid_w, dil_w, top, left)
                else:
                    fill_phases(x[n, g * in_group + ci], phased[ci], line, grid_h, grid_w, stride_h,
                                stride_w, top, left)
            for c0 in range(0, run, chunk):
                c1 = min(run, c0 + chunk)
                full = c0 + (c1 - c0) // step * step  # runs of V vectors; the rest one vector at a time
                for b in range(blocks):
                    w_at = (g * blocks + b) * in_group * 9 * R
                    row0 = b * R * width
                    bias0 = simd.splat(bias, (g * blocks + b) * R)
                    bias1 = simd.splat(bias, (g * blocks + b) * R + 1)
                    bias2 = simd.splat(bias, (g * blocks + b) * R + 2)
                    bias3 = simd.splat(bias, (g * blocks + b) * R + 3)
                    for f0 in range(c0, full, step):
                        a00, a01, a02, a03 = bias0, bias0, bias0, bias0
                        a10, a11, a12, a13 = bias1, bias1, bias1, bias1
                        a20, a21, a22, a23 = bias2, bias2, bias2, bias2
                        a30, a31, a32, a33 = bias3, bias3, bias3, bias3
                        for ci in range(in_group):
                            x_at = ci * channel + f0
                            wc = w_at + ci * 9 * R
                            for t in range(9):
                                at = x_at + starts[t]
                                x0 = simd.load_unchecked(phased, at)
                                x1 = simd.load_unchecked(phased, at + lanes)
                                x2 = simd.load_unchecked(phased, at + 2 * lanes)
                                x3 = simd.load_unchecked(phased, at + 3 * lanes)
                                wt = wc + t * R
                                s = simd.splat_unchecked(wp, wt)
                                a00, a01 = simd.fma(s, x0, a00), simd.fma(s, x1, a01)
                                a02, a03 = simd.fma(s, x2, a02), simd.fma(s, x3, a03)
                                s = simd.splat_unchecked(wp, wt + 1)
                                a10, a11 = simd.fma(s, x0, a10), simd.fma(s, x1, a11)
                                a12, a13 = simd.fma(s, x2, a12), simd.fma(s, x3, a13)
                                s = simd.splat_unchecked(wp, wt + 2)
                                a20, a21 = simd.fma(s, x0, a20), simd.fma(s, x1, a21)
                                a22, a23 = simd.fma(s, x2, a22), simd.fma(s, x3, a23)
                                s = simd.splat_unchecked(wp, wt + 3)
                                a30, a31 = simd.fma(s, x0, a30), simd.fma(s, x1, a31)
                                a32, a33 = simd.fma(s, x2, a32), simd.fma(s, x3, a33)
                        at = row0 + f0
                        simd.store(wide, at, a00)
                        simd.store(wide, at + lanes, a01)
                        simd.store(wide, at + 2 * lanes, a02)
                        simd.store(wide, at + 3 * lanes, a03)
                        at += width
                        simd.store(wide, at, a10)
                        simd.store(wide, at + lanes, a11)
                        simd.store(wide, at + 2 * lanes, a12)
                        simd.store(wide, at + 3 * lanes, a13)
                        at += width
                        simd.store(wide, at, a20)
                        simd.store(wide, at + lanes, a21)
                        simd.store(wide, at + 2 * lanes, a22)
                        simd.store(wide, at + 3 * lanes, a23)
                        at += width
                        simd.store(wide, at, a30)
                        simd.store(wide, at + lanes, a31)
                        simd.store(wide, at + 2 * lanes, a32)
                        simd.store(wide, at + 3 * lanes, a33)
                    for f0 in range(full, c1, lanes):
                        a00, a10, a20, a30 = bias0, bias1, bias2, bias3
                        for ci in range(in_group):
                            x_at = ci * channel + f0
                            wc = w_at + ci * 9 * R
                            for t in range(9):
                                x0 = simd.load_unchecked(phased, x_at + starts[t])
                                wt = wc + t * R
                                a00 = simd.fma(simd.splat_unchecked(wp, wt), x0, a00)
                                a10 = simd.fma(simd.splat_unchecked(wp, wt + 1), x0, a10)
                                a20 = simd.fma(simd.splat_unchecked(wp, wt + 2), x0, a20)
                                a30 = simd.fma(simd.splat_unchecked(wp, wt + 3), x0, a30)
                        simd.store(wide, row0 + f0, a00)
                        simd.store(wide, row0 + width + f0, a10)
                        simd.store(wide, row0 + 2 * width + f0, a20)
                        simd.store(wide, row0 + 3 * width + f0, a30)
            for k in range(out_group):
                o = g * out_group + k
                for q in range(out_h):
                    target, source = out[n, o, q], wide[k, q * grid_w:q * grid_w + out_w]
                    for c in range(out_w):
                        target[c] = source[c]
                if codes.size:
                    at = (n * out.shape[1] + o) * plane_out
                    apply_steps(out[n, o].reshape(plane_out), res0[at:at + plane_out] if res0.size else res0,
                                res1[at:at + plane_out] if res1.size else res1, codes, params, single)


def applicable(conv: ConvOperands) -> bool:
    """A 2D conv with 3x3 kernels and groups of MIN_GROUP_CHANNELS or more input channels."""
    c = conv.x.shape[1]
    return (conv.x.ndim == 4 and conv.kernel == (3, 3) and conv.groups > 1
            and c // conv.groups >= MIN_GROUP_CHANNELS)


def conv_grouped_simd(conv: ConvOperands) -> np.ndarray:
    """The grouped 3x3 conv of `conv` with its bias and epilogue."""
    dtype = np.result_type(conv.x, conv.weight)
    x = np.ascontiguousarray(conv.x, dtype=dtype)
    n, c = x.shape[:2]
    groups = conv.groups
    k_out = conv.weight.shape[0]
    wp = packed_weights(conv.weight, groups, dtype)
    bias = np.zeros((groups, wp.shape[1] * R), dtype)
    if conv.bias is not None:
        bias[:, :k_out // groups] = np.asarray(conv.bias, dtype).reshape(groups, -1)
    (sh, sw), dw = conv.stride, conv.dilation[1]
    (top, _), (left, _) = (tuple(p) for p in conv.node.attrs["padding"])
    at = Geometry.of(conv.out_spatial, conv.stride, conv.dilation, dtype, c // groups)
    if at.last_read() >= at.channel:  # what the unchecked loads rely on (tests prove it for every shape)
        raise AssertionError(f"node '{conv.node.name}': grouped kernel would read past its input copy")
    phased = scratch("grouped padded input", (c // groups, at.channel), dtype)
    wide = scratch("grouped wide sums", (wp.shape[1] * R, at.run), dtype)
    line = np.zeros(sw * at.grid_w + left + x.shape[3], dtype)  # fill_phases' row buffer: zeros
    out = np.empty((n, k_out) + conv.out_spatial, dtype)
    steps = tuple(conv.node.attrs["epilogue"])
    fused, codes, params, res0, res1 = epilogue_jit.kernel_epilogue(steps, conv.residuals, dtype)
    grouped3x3_simd(x, wp, bias, out, at.dense, at.grid_h, at.grid_w, sh, sw, dw, top, left, at.starts,
                    at.chunk, codes, params, dtype == np.float32, res0, res1, phased, line, wide)
    return out if fused else conv.finish(out, bias_added=True)
