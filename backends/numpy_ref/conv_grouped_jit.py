"""Grouped 3x3 convolution compiled by numba (backends/numpy_ref/jit.py): the "direct" algorithm of a
2D conv with 3x3 kernels whose groups hold two or more input channels each (RegNet, ResNeXt).

NCHW in, NCHW out. Per image and group, the group's Cg input planes are zero-padded and split into
stride phases once (conv_depthwise_jit.fill_phases), so each of the nine taps reads its phase at a
constant offset from the output's flat index in a "wide" row of Wq columns; then per block of output
rows and per KB = 4 output channels of the group:

    sums[b, :] = bias[k0 + b]                                        # b < KB, one block of wide rows
    for ci in the group's Cg channels:                               # one vectorized pass each:
        sums[b, f] += sum over taps t of P[ci][start[t] + f] * w[k0 + b, ci, t]   # 9 loads, 36 FMAs
    out[n, k0 + b, rows, :] = sums[b] cropped
    epilogue_jit.apply_steps on each output plane of the group (activations, residual adds)

Each input value loaded serves four output channels and each sum is loaded and stored once per
nine taps of a channel, where one BLAS GEMM per group (im2col) gathers a 9x column matrix and then
multiplies matrices only 8-64 wide (OpenBLAS runs those at 7-36 G multiply-adds/s here). The padding
is real zeros, so 0 * inf gives NaN as in torch; only contraction into FMA is allowed (jit.OPTIONS).

    y = conv_grouped_jit(conv)    # conv: ConvOperands; applicable(conv) and jit.enabled_for(dtype)
"""
from __future__ import annotations

import numpy as np

from convc.backends.numpy_ref import epilogue_jit, jit
from convc.backends.numpy_ref.conv_depthwise_jit import RUN_MULTIPLE, fill_phases
from convc.backends.numpy_ref.conv_operands import ConvOperands
from convc.backends.numpy_ref.epilogue_jit import apply_steps
from convc.backends.numpy_ref.scratch import scratch

# Sums per pass are computed in whole multiples of this many: the vector loop's step (16 float32 lanes;
# LLVM does not unroll it further, the 36 multiply-adds of a step fill the registers), so a 14x14 map's
# 222 wide sums run as 224, not the 256 of conv_depthwise_jit's RUN_MULTIPLE (whose slack the scratch
# buffers keep).
RUN_STEP = 16

# Output channels summed together: each input load feeds this many FMAs per tap.
KB = 4

# The widest groups (input channels per group) the kernel takes. Up to 64 it beat grouped im2col on the
# layers it was measured on (RegNet-X/Y up to 3.2GF, ResNeXt-50: groups of 2-48); on wider groups
# (RegNet-X 16GF: 128, RegNet-Y 32GF: 232) whole models ran 6-14% slower with it than with im2col, whose
# GEMMs are wide enough there (bench_zoo_cpu.py --repin direct=im2col, 1 thread, 2026-12-01 20:40 UTC).
MAX_GROUP_CHANNELS = 64

# Wide output elements per block of rows: KB blocks of sums (16 KiB of float32) stay in the L1 cache.
ACC_ELEMENTS = 1024


@jit.inline
def add_channels(sums: np.ndarray, phased: np.ndarray, w: np.ndarray, s: np.ndarray, run: int) -> None:
    """sums[b, :run] += sum over channels ci and taps t of phased[ci, s[t]:][:run] * w[b, ci, t] for
    b < 4 (w: (4, Cg, 9)): each input value loaded feeds four sums."""
    for ci in range(w.shape[1]):
        src = phased[ci]
        q0, q1, q2 = src[s[0]:s[0] + run], src[s[1]:s[1] + run], src[s[2]:s[2] + run]
        q3, q4, q5 = src[s[3]:s[3] + run], src[s[4]:s[4] + run], src[s[5]:s[5] + run]
        q6, q7, q8 = src[s[6]:s[6] + run], src[s[7]:s[7] + run], src[s[8]:s[8] + run]
        a0, a1, a2, a3, a4, a5, a6, a7, a8 = w[0, ci, 0], w[0, ci, 1], w[0, ci, 2], w[0, ci, 3], \
            w[0, ci, 4], w[0, ci, 5], w[0, ci, 6], w[0, ci, 7], w[0, ci, 8]
        b0, b1, b2, b3, b4, b5, b6, b7, b8 = w[1, ci, 0], w[1, ci, 1], w[1, ci, 2], w[1, ci, 3], \
            w[1, ci, 4], w[1, ci, 5], w[1, ci, 6], w[1, ci, 7], w[1, ci, 8]
        c0, c1, c2, c3, c4, c5, c6, c7, c8 = w[2, ci, 0], w[2, ci, 1], w[2, ci, 2], w[2, ci, 3], \
            w[2, ci, 4], w[2, ci, 5], w[2, ci, 6], w[2, ci, 7], w[2, ci, 8]
        d0, d1, d2, d3, d4, d5, d6, d7, d8 = w[3, ci, 0], w[3, ci, 1], w[3, ci, 2], w[3, ci, 3], \
            w[3, ci, 4], w[3, ci, 5], w[3, ci, 6], w[3, ci, 7], w[3, ci, 8]
        for f in range(run):
            x0, x1, x2, x3, x4 = q0[f], q1[f], q2[f], q3[f], q4[f]
            x5, x6, x7, x8 = q5[f], q6[f], q7[f], q8[f]
            sums[0, f] += ((x0 * a0 + x1 * a1 + x2 * a2) + (x3 * a3 + x4 * a4 + x5 * a5)
                            + (x6 * a6 + x7 * a7 + x8 * a8))
            sums[1, f] += ((x0 * b0 + x1 * b1 + x2 * b2) + (x3 * b3 + x4 * b4 + x5 * b5)
                            + (x6 * b6 + x7 * b7 + x8 * b8))
            sums[2, f] += ((x0 * c0 + x1 * c1 + x2 * c2) + (x3 * c3 + x4 * c4 + x5 * c5)
                            + (x6 * c6 + x7 * c7 + x8 * c8))
            sums[3, f] += ((x0 * d0 + x1 * d1 + x2 * d2) + (x3 * d3 + x4 * d4 + x5 * d5)
                            + (x6 * d6 + x7 * d7 + x8 * d8))


@jit.inline
def add_channels_one(sums: np.ndarray, phased: np.ndarray, w: np.ndarray, s: np.ndarray, run: int) -> None:
    """sums[:run] += sum over channels ci and taps t of phased[ci, s[t]:][:run] * w[ci, t]: one output
    channel (the group's last Kg % 4)."""
    for ci in range(w.shape[0]):
        src = phased[ci]
        p0, p1, p2 = src[s[0]:s[0] + run], src[s[1]:s[1] + run], src[s[2]:s[2] + run]
        p3, p4, p5 = src[s[3]:s[3] + run], src[s[4]:s[4] + run], src[s[5]:s[5] + run]
        p6, p7, p8 = src[s[6]:s[6] + run], src[s[7]:s[7] + run], src[s[8]:s[8] + run]
        a0, a1, a2, a3, a4, a5, a6, a7, a8 = w[ci, 0], w[ci, 1], w[ci, 2], w[ci, 3], w[ci, 4], w[ci, 5], \
            w[ci, 6], w[ci, 7], w[ci, 8]
        for f in range(run):
            sums[f] += (p0[f] * a0 + p1[f] * a1 + p2[f] * a2 + p3[f] * a3 + p4[f] * a4 + p5[f] * a5
                        + p6[f] * a6 + p7[f] * a7 + p8[f] * a8)


@jit.kernel
def grouped3x3(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, groups: int,
               stride_h: int, stride_w: int, dil_h: int, dil_w: int, top: int, left: int, codes: np.ndarray,
               params: np.ndarray, single: bool, res0: np.ndarray, res1: np.ndarray, phased: np.ndarray,
               line: np.ndarray, acc: np.ndarray) -> None:
    """out[n, o] for every image n and output channel o of a grouped conv with 3x3 kernels.

    Pointers: x (N, C, H, W), w (K, Cg, 9) (the 3x3 taps flattened), bias (K), out (N, K, OH, OW),
    all C-contiguous of one dtype. Sizes come from the arrays; strides, dilations and the low padding
    are given; res0, res1: residuals flattened (out.size elements each) or empty. Meta: codes and
    params, the epilogue's steps (epilogue_jit.encode), run by apply_steps on each output plane of a
    group once it is complete, still in the cache; single: float32 (its exp). Scratch: phased (Cg,
    >= sh * sw * Hq * Wq + RUN_MULTIPLE), line (fill_phases' row buffer, zeros), acc (KB,
    max(ACC_ELEMENTS, Wq) + RUN_MULTIPLE: its length sets the rows per block)."""
    in_group = w.shape[1]
    out_group = w.shape[0] // groups
    out_h, out_w = out.shape[2], out.shape[3]
    grid_h = out_h + 2 * dil_h // stride_h
    grid_w = out_w + 2 * dil_w // stride_w
    plane = grid_h * grid_w
    plane_out = out_h * out_w
    rows_per_block = max(1, min(out_h, (acc.shape[1] - RUN_MULTIPLE) // grid_w))
    starts = np.empty(9, np.int64)
    phased[:] = 0  # the padding of every channel's copy (fill_phases writes only the inside)
    for n in range(x.shape[0]):
        for g in range(groups):
            for ci in range(in_group):
                fill_phases(x[n, g * in_group + ci], phased[ci], line, grid_h, grid_w, stride_h, stride_w,
                            top, left)
            for r0 in range(0, out_h, rows_per_block):
                rows = min(rows_per_block, out_h - r0)
                run = ((rows - 1) * grid_w + out_w + RUN_STEP - 1) // RUN_STEP * RUN_STEP
                for i in range(3):
                    row_base = (r0 + i * dil_h // stride_h) * grid_w
                    phase_h = (i * dil_h % stride_h) * stride_w
                    for j in range(3):
                        phase = phase_h + j * dil_w % stride_w
                        starts[i * 3 + j] = phase * plane + row_base + j * dil_w // stride_w
                for k0 in range(0, out_group, KB):
                    first = g * out_group + k0
                    count = min(KB, out_group - k0)
                    for b in range(count):
                        shift = bias[first + b]
                        for f in range(run):
                            acc[b, f] = shift
                    if count == KB:
                        add_channels(acc, phased, w[first:first + KB], starts, run)
                    else:
                        for b in range(count):
                            add_channels_one(acc[b], phased, w[first + b], starts, run)
                    for b in range(count):
                        for r in range(rows):
                            target, source = out[n, first + b, r0 + r], acc[b, r * grid_w:r * grid_w + out_w]
                            for q in range(out_w):
                                target[q] = source[q]
            if codes.size:
                for o in range(g * out_group, (g + 1) * out_group):
                    at = (n * out.shape[1] + o) * plane_out
                    apply_steps(out[n, o].reshape(plane_out), res0[at:at + plane_out] if res0.size else res0,
                                res1[at:at + plane_out] if res1.size else res1, codes, params, single)


def applicable(conv: ConvOperands) -> bool:
    """A 2D conv with 3x3 kernels and groups of 2 to MAX_GROUP_CHANNELS input channels each."""
    c = conv.x.shape[1]
    return (conv.x.ndim == 4 and conv.kernel == (3, 3) and conv.groups > 1
            and 2 <= c // conv.groups <= MAX_GROUP_CHANNELS)


def conv_grouped_jit(conv: ConvOperands) -> np.ndarray:
    """The grouped 3x3 conv of `conv` with its bias and epilogue."""
    dtype = np.result_type(conv.x, conv.weight)
    x = np.ascontiguousarray(conv.x, dtype=dtype)
    n, c = x.shape[:2]
    k_out = conv.weight.shape[0]
    w = np.ascontiguousarray(conv.weight, dtype=dtype).reshape(k_out, c // conv.groups, 9)
    (sh, sw), (dh, dw) = conv.stride, conv.dilation
    (top, _), (left, _) = (tuple(p) for p in conv.node.attrs["padding"])
    out_h, out_w = conv.out_spatial
    grid_h, grid_w = out_h + 2 * dh // sh, out_w + 2 * dw // sw
    phased = scratch("grouped padded input", (c // conv.groups, sh * sw * grid_h * grid_w + RUN_MULTIPLE),
                     dtype)
    acc = scratch("grouped sums", (KB, max(ACC_ELEMENTS, grid_w) + RUN_MULTIPLE), dtype)
    line = np.zeros(sw * grid_w + left + x.shape[3], dtype)  # fill_phases' row buffer: zeros
    bias = np.zeros(k_out, dtype) if conv.bias is None else np.ascontiguousarray(conv.bias, dtype=dtype)
    out = np.empty((n, k_out, out_h, out_w), dtype)
    steps = tuple(conv.node.attrs["epilogue"])
    fused, codes, params, res0, res1 = epilogue_jit.kernel_epilogue(steps, conv.residuals, dtype)
    grouped3x3(x, w, bias, out, conv.groups, sh, sw, dh, dw, top, left, codes, params, dtype == np.float32,
               res0, res1, phased, line, acc)
    return out if fused else conv.finish(out, bias_added=True)
