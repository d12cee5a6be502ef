"""Convolution as one GEMM per group (im2col): a strided window view of the padded input is gathered
into a [C/groups * prod(kernel), prod(out spatial)] column matrix per image and group, and multiplied
by the weight reshaped to [out_channels/groups, C/groups * prod(kernel)].

    out[n, g] = W[g] @ cols[n, g]          # (Og, Cg*K) @ (Cg*K, P) -> (Og, P), a BLAS GEMM

A 1x1 stride-1 unpadded convolution needs no gather at all: its window view reshapes for free.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convc.ir import Node
from convc.ops import CONV_OPS

from convc.backends.numpy_ref.conv_operands import ConvOperands


def window_view(xp: np.ndarray, groups: int, kernel: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...], out_spatial: tuple[int, ...]) -> np.ndarray:
    """A read-only view of shape (N, G, C/G, *kernel, *out_spatial) with
    view[n, g, c, k..., o...] = xp[n, g*C/G + c, o*stride + k*dilation ...]."""
    n, c = xp.shape[:2]
    s_n, s_c = xp.strides[:2]
    s_sp = xp.strides[2:]
    shape = (n, groups, c // groups) + kernel + out_spatial
    strides = ((s_n, s_c * (c // groups), s_c) + tuple(d * s for d, s in zip(dilation, s_sp))
               + tuple(st * s for st, s in zip(stride, s_sp)))
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def conv_im2col(node: Node, args: list[Any]) -> np.ndarray:
    """conv1d/2d/3d with any padding, stride, dilation and groups, as batched GEMMs."""
    conv = ConvOperands.of(node, args)
    xp = conv.padded_input()
    n, c = xp.shape[:2]
    g = conv.groups
    out_channels = conv.weight.shape[0]
    patch = (c // g) * conv.kernel_size
    positions = math.prod(conv.out_spatial)
    view = window_view(xp, g, conv.kernel, conv.stride, conv.dilation, conv.out_spatial)
    cols = view.reshape(n, g, patch, positions)  # the gather: a copy unless the view is already dense
    weight = conv.weight.reshape(g, out_channels // g, patch)
    out = np.matmul(weight, cols)  # (G, Og, patch) @ (N, G, patch, P) -> (N, G, Og, P)
    return conv.finish(out.reshape(conv.out_shape))


KERNELS = {(op, "im2col"): conv_im2col for op in CONV_OPS}
