"""Strided copy over a logical (N, C, D, H, W) index space: the glue between layouts.

It converts a caller's NCHW (or any strided) tensor into the channels-last pixel matrix at the start of
forward and back at the end, flattens a channels-last map in NCHW order for a following linear layer, and
copies a concat operand that could not be written in place.

    strides_of_view(view, (d, h, w))   # logical strides of a pixel-matrix view
    launch = strided_copy_launch("x", shape5, src, src_strides, dst, dst_strides)
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from convc.backends.triton.common import flat_block
from convc.backends.triton.launch import Launch, View

Strides5 = tuple[int, int, int, int, int]
Shape5 = tuple[int, int, int, int, int]


@triton.jit
def strided_copy_kernel(
    # pointers: source and destination
    src_ptr, dst_ptr,
    # sizes: elements in all, the logical (N,) C, D, H, W extents
    total, C, D, H, W,
    # strides: source (s_*) then destination (t_*) per logical axis
    s_n, s_c, s_d, s_h, s_w, t_n, t_c, t_d, t_h, t_w,
    # meta: elements per program
    BLOCK: tl.constexpr,
):
    """dst[n*t_n + c*t_c + d*t_d + h*t_h + w*t_w] = src[n*s_n + c*s_c + ...] for every (n, c, d, h, w),
    cast to dst's dtype.

    Tiles: program i owns flat indices i*BLOCK .. of the logical NCDHW index space, decodes each into
    (n, c, d, h, w) and does one gather load and one scatter store. Launch grid (cdiv(total, BLOCK),)."""
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = idx < total
    w = idx % W
    t = idx // W
    h = t % H
    t = t // H
    d = t % D
    t = t // D
    c = t % C
    n = t // C
    v = tl.load(src_ptr + n * s_n + c * s_c + d * s_d + h * s_h + w * s_w, mask=ok)
    tl.store(dst_ptr + n * t_n + c * t_c + d * t_d + h * t_h + w * t_w, v.to(dst_ptr.dtype.element_ty), mask=ok)


def shape5(shape: tuple[int, ...]) -> Shape5:
    """(N, C, *spatial) -> (N, C, D, H, W); a 2-D (N, F) tensor is (N, F, 1, 1, 1). A 1-D (L,) value is
    stored as one pixel of L channels (geometry.channels), so it is (1, L, 1, 1, 1)."""
    if len(shape) == 1:
        return (1, shape[0], 1, 1, 1)
    sp = tuple(shape[2:])
    return tuple(shape[:2]) + (1,) * (3 - len(sp)) + sp  # type: ignore[return-value]


def strides_of_view(view: View, spatial: tuple[int, int, int]) -> Strides5:
    """Logical (N, C, D, H, W) strides of a channels-last pixel-matrix view."""
    d, h, w = spatial
    return (d * h * w * view.ld, 1, h * w * view.ld, w * view.ld, view.ld)


def strides_of_tensor(t: torch.Tensor) -> Strides5:
    st = tuple(t.stride())
    if t.dim() == 1:  # (L,) is (1, L, 1, 1, 1): see shape5
        return (0, st[0], 0, 0, 0)
    if t.dim() < 1:
        raise ValueError("expected at least 1 dimension")
    return tuple(st[:2]) + (0,) * (5 - t.dim()) + tuple(st[2:])  # type: ignore[return-value]


def nchw_flat_strides(view: View, spatial: tuple[int, int, int]) -> Strides5:
    """Strides that write a (N, C, D, H, W) value as rows of C*D*H*W features in NCHW order (flatten)."""
    d, h, w = spatial
    return (view.ld, d * h * w, h * w, w, 1)


def strided_copy_launch(node: str, shape: Shape5, src: torch.Tensor, src_strides: Strides5, dst: torch.Tensor,
                        dst_strides: Strides5, out: View | None = None) -> Launch:
    """`src` / `dst` are pointer tensors (a view's .ptr or a caller's tensor)."""
    total = 1
    for s in shape:
        total *= s

    def grid(cfg: dict[str, Any]) -> tuple[int, ...]:
        return (triton.cdiv(total, cfg["BLOCK"]),)

    args = (src, dst, total, *shape[1:], *src_strides, *dst_strides)
    return Launch(node, strided_copy_kernel, grid, args, {}, {"BLOCK": flat_block(total, 1024)}, out=out)
