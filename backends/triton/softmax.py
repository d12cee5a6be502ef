"""Softmax along any axis of a channels-last pixel matrix, in fp32 with the running-max trick.

A row is one 1-D slice along the axis: element l of row r sits at base(r) + l * step, with
base(r) = o * stride_o + p * stride_p + c for r = (o * P_after + p) * C_inner + c. Along channels that is
(o = pixel, P_after = C_inner = 1, step = 1); along a spatial or batch axis, c runs over the channels and
p over the positions after the axis.

    launch = softmax_launch("prob", node_type, axis, x, y)
"""
from __future__ import annotations

import math
from typing import Any

import triton
import triton.language as tl

from convc.backends.triton.launch import Launch, View
from convc.types import TensorType


@triton.jit
def softmax_kernel(
    # pointers: input and output
    x_ptr, y_ptr,
    # sizes: row length, positions after the axis, channels inside (row r = (o * P_after + p) * C_inner + c)
    L, P_after, C_inner,
    # strides: of o, of p and along the row, for x then y
    xs_o, xs_p, x_step, ys_o, ys_p, y_step,
    # meta: block along the row
    BLOCK_L: tl.constexpr,
):
    """y = exp(x - max) / Σ exp(x - max) along one row (one 1-D slice along the softmax axis), in fp32.

    Tiles: program r owns row r and walks it twice in blocks of BLOCK_L: a running max and rescaled sum,
    then normalise and store. Launch grid (rows,)."""
    r = tl.program_id(0)
    c = r % C_inner
    t = r // C_inner
    p = t % P_after
    o = t // P_after
    x_row = x_ptr + o * xs_o + p * xs_p + c
    y_row = y_ptr + o * ys_o + p * ys_p + c
    rl = tl.arange(0, BLOCK_L)
    # Pass 1: running max and the sum of exponentials relative to it.
    run_max = tl.full((BLOCK_L,), float("-inf"), tl.float32)
    run_sum = tl.zeros((BLOCK_L,), dtype=tl.float32)
    for l0 in range(0, L, BLOCK_L):
        ll = l0 + rl
        v = tl.load(x_row + ll * x_step, mask=ll < L, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(run_max, v)
        # Rescale against a finite reference so lanes that have only seen -inf give 0, not NaN.
        ref = tl.where(new_max == float("-inf"), 0.0, new_max)
        run_sum = run_sum * tl.exp(run_max - ref) + tl.exp(v - ref)
        run_max = new_max
    row_max = tl.max(run_max, axis=0)
    row_sum = tl.sum(run_sum * tl.exp(run_max - row_max), axis=0)
    # Pass 2: normalise and store.
    for l0 in range(0, L, BLOCK_L):
        ll = l0 + rl
        v = tl.load(x_row + ll * x_step, mask=ll < L, other=float("-inf")).to(tl.float32)
        out = tl.exp(v - row_max) / row_sum
        tl.store(y_row + ll * y_step, out.to(y_ptr.dtype.element_ty), mask=ll < L)


def _row_strides(t: TensorType, axis: int, view: View) -> tuple[int, int, int, int, int, int]:
    """(L, P_after, C_inner, stride_o, stride_p, step) for softmax along `axis` of a value of type t."""
    if t.rank <= 2 and axis == t.rank - 1 or axis == 1:
        return t.shape[axis], 1, 1, view.ld, 0, 1
    # Memory order is (N, *spatial, C): the axis is N (0) or a spatial axis (>= 2).
    spatial = t.shape[2:]
    after = math.prod(spatial[axis - 1:]) if axis >= 2 else math.prod(spatial)
    length = t.shape[axis]
    return length, after, t.shape[1], length * after * view.ld, view.ld, after * view.ld


def softmax_launch(node: str, t: TensorType, axis: int, x: View, y: View) -> Launch:
    length, after, c_inner, xs_o, xs_p, x_step = _row_strides(t, axis, x)
    _, _, _, ys_o, ys_p, y_step = _row_strides(t, axis, y)
    rows = t.numel // length
    block = min(1024, triton.next_power_of_2(length))

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (rows,)

    args = (x.ptr, y.ptr, length, after, c_inner, xs_o, xs_p, x_step, ys_o, ys_p, y_step)
    return Launch(node, softmax_kernel, grid, args, {}, {"BLOCK_L": block}, out=y)
