"""Max and average pooling in 1D/2D/3D (padding, ceil_mode, count_include_pad) and global pooling.

Windows follow torch: output size from the op schema (a ceil-mode window must start inside the input
or its low padding), max pooling ignores padding, and average pooling divides by

    count_include_pad=True:  the window clipped to the padded extent [-p, size + p)
    count_include_pad=False: the window clipped to the input [0, size)

per axis, multiplied over axes. Each kernel offset is one strided slice of the padded input.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.ir import Node


def _padded(x: np.ndarray, node: Node, fill: float) -> np.ndarray:
    """x padded by `padding` low and, on the high side, as far as the last (ceil-mode) window reaches."""
    attrs = node.attrs
    pads = [(0, 0), (0, 0)]
    for size, out, k, s, p in zip(x.shape[2:], node.type.shape[2:], attrs["kernel"], attrs["stride"],
                                  attrs["padding"]):
        reach = (out - 1) * s + k  # one past the last window's end, in padded coordinates
        pads.append((p, max(reach - size - p, 0)))
    if not any(lo or hi for lo, hi in pads):
        return x
    return np.pad(x, pads, constant_values=fill)


def _window_slices(node: Node, offset: tuple[int, ...]) -> tuple[slice, ...]:
    attrs = node.attrs
    return (slice(None), slice(None)) + tuple(
        slice(o, o + s * (out - 1) + 1, s)
        for o, s, out in zip(offset, attrs["stride"], node.type.shape[2:]))


def _reduce_windows(xp: np.ndarray, node: Node, combine: np.ufunc) -> np.ndarray:
    """combine(...) over every kernel offset's strided slice, into one fresh array."""
    offsets = list(np.ndindex(*node.attrs["kernel"]))
    out = xp[_window_slices(node, offsets[0])].copy()
    for offset in offsets[1:]:
        combine(out, xp[_window_slices(node, offset)], out=out)
    return out


def max_pool(node: Node, args: list[Any]) -> np.ndarray:
    return _reduce_windows(_padded(args[0], node, -np.inf), node, np.maximum)


def avg_pool_divisor(size: int, out: int, k: int, s: int, p: int, count_include_pad: bool) -> np.ndarray:
    """Per-output-position divisor along one axis, as torch computes it."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if count_include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, size) - np.maximum(start, 0)).astype(np.float64)


def avg_pool(node: Node, args: list[Any]) -> np.ndarray:
    x = args[0]
    attrs = node.attrs
    out = _reduce_windows(_padded(x, node, 0.0), node, np.add)
    divisor = np.ones((), np.float64)
    for axis, (size, n_out, k, s, p) in enumerate(zip(x.shape[2:], node.type.shape[2:], attrs["kernel"],
                                                      attrs["stride"], attrs["padding"])):
        per_axis = avg_pool_divisor(size, n_out, k, s, p, attrs["count_include_pad"])
        divisor = np.multiply.outer(divisor, per_axis)
    out /= divisor.astype(x.dtype)
    return out


def global_avg_pool(node: Node, args: list[Any]) -> np.ndarray:
    x = args[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def global_max_pool(node: Node, args: list[Any]) -> np.ndarray:
    x = args[0]
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def adaptive_windows(size: int, out: int) -> np.ndarray:
    """The (out, size) matrix that averages input positions [floor(i * size / out), ceil((i + 1) * size /
    out)) into output position i, torch's adaptive pooling windows."""
    matrix = np.zeros((out, size))
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        matrix[i, lo:hi] = 1.0 / (hi - lo)
    return matrix


def adaptive_avg_pool(node: Node, args: list[Any]) -> np.ndarray:
    """A window is a product of per-axis intervals, so its mean is the per-axis means applied in turn."""
    out = args[0]
    for axis, target in enumerate(node.attrs["output_size"], start=2):
        matrix = adaptive_windows(out.shape[axis], target).astype(out.dtype)
        out = np.moveaxis(np.tensordot(out, matrix, axes=([axis], [1])), -1, axis)
    return np.ascontiguousarray(out)


KERNELS = {
    ("adaptive_avg_pool", None): adaptive_avg_pool,
    **{(f"max_pool{nd}d", None): max_pool for nd in (1, 2, 3)},
    **{(f"avg_pool{nd}d", None): avg_pool for nd in (1, 2, 3)},
    ("global_avg_pool", None): global_avg_pool,
    ("global_max_pool", None): global_max_pool,
}
