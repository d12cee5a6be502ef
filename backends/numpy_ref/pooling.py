"""Max and average pooling in 1D/2D/3D (padding, ceil_mode, count_include_pad) and global pooling.

Windows follow torch: output size from the op schema (a ceil-mode window must start inside the input
or its low padding), max pooling ignores padding, and average pooling divides by

    count_include_pad=True:  the window clipped to the padded extent [-p, size + p)
    count_include_pad=False: the window clipped to the input [0, size)

per axis, multiplied over axes. Windows are boxes, so they reduce one axis at a time (3 + 3 passes for
a 3x3 window, not 9), each kernel offset a strided slice of the input clipped to where it is valid: the
padding is never copied in. Where the axis is a whole number of strides long (3x3 stride-1 "same" and
stride-2 pools on even maps), a tap is one call over all rows and only the border windows are redone.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from convc.ir import Node

from convc.backends.numpy_ref import jit, pooling_jit
from convc.backends.numpy_ref.windows import valid_outputs


def _reduce_axis_by_slices(x: np.ndarray, axis: int, out_size: int, k: int, s: int, p: int, combine: np.ufunc,
                 identity: float) -> np.ndarray:
    """combine(...) over the 1D windows [o*s - p, o*s - p + k) of one axis, clipped to the input (the
    padding never materialised), into a fresh array with `out_size` positions on that axis."""
    size = x.shape[axis]
    before = (slice(None),) * axis
    ranges = [valid_outputs(size, out_size, offset, s, p) for offset in range(k)]
    full = [offset for offset, (lo, hi) in enumerate(ranges) if (lo, hi) == (0, out_size)]
    shape = x.shape[:axis] + (out_size,) + x.shape[axis + 1:]

    def source(offset: int, lo: int, hi: int) -> tuple[slice, ...]:
        return before + (slice(offset - p + lo * s, offset - p + (hi - 1) * s + 1, s),)

    if full:  # start from a tap every window has: no fill pass
        out = x[source(full[0], 0, out_size)].copy()
    else:
        out = np.full(shape, identity, x.dtype)
    for offset, (lo, hi) in enumerate(ranges):
        if lo < hi and (not full or offset != full[0]):
            part = out[before + (slice(lo, hi),)]
            combine(part, x[source(offset, lo, hi)], out=part)
    return out


def _reduce_axis_flat(x: np.ndarray, axis: int, out_size: int, k: int, s: int, p: int,
                      combine: np.ufunc) -> np.ndarray | None:
    """The same windows as `_reduce_axis_by_slices`, each tap one call over every row at once, or None
    when the layout does not allow it (a non-contiguous input, or size != out_size * stride).

    With size == out_size * s, output q = (row, o) of the flattened (rows, out_size) grid reads input
    row position s*q + tap - p: one strided view spans all rows. The outputs whose windows are whole
    (o in [first, last)) come out right; those the tap reads across a row boundary (the few border
    positions per row) are recomputed from their clipped windows afterwards. On GoogLeNet's
    3x3 pools (7x7 to 112x112 maps) this replaced thousands of 6-56-element inner loops per tap."""
    size = x.shape[axis]
    ranges = [valid_outputs(size, out_size, offset, s, p) for offset in range(k)]
    first, last = max(lo for lo, _ in ranges), min(hi for _, hi in ranges)
    if size != out_size * s or first >= last or not x.flags.c_contiguous:
        return None
    rows, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
    out = np.empty(x.shape[:axis] + (out_size,) + x.shape[axis + 1:], x.dtype)
    grid = out.reshape(rows * out_size, inner)
    span = slice(first, (rows - 1) * out_size + last)  # whole windows, and the borders between rows
    blocks = x.reshape(rows * out_size, s * inner)  # one stride's worth of input per output position
    for offset in range(k):
        shift, phase = divmod(offset - p, s)  # output q's tap is block q + shift, part `phase`
        taps = blocks[span.start + shift:span.stop + shift, phase * inner:(phase + 1) * inner]
        if offset == 0:
            np.copyto(grid[span], taps)
        else:
            combine(grid[span], taps, out=grid[span])
    rows_view = out.reshape(rows, out_size, inner)
    source = x.reshape(rows, size, inner)
    for o in [*range(first), *range(last, out_size)]:  # clipped windows: only their valid taps
        taps = [o * s + offset - p for offset, (lo, hi) in enumerate(ranges) if lo <= o < hi]
        np.copyto(rows_view[:, o], source[:, taps[0]])
        for t in taps[1:]:
            combine(rows_view[:, o], source[:, t], out=rows_view[:, o])
    return out


def _reduce_axis(x: np.ndarray, axis: int, out_size: int, k: int, s: int, p: int, combine: np.ufunc,
                 identity: float) -> np.ndarray:
    """combine(...) over the 1D windows [o*s - p, o*s - p + k) of one axis, clipped to the input, into
    a fresh array: all rows at once where the layout allows, else slice by slice."""
    flat = _reduce_axis_flat(x, axis, out_size, k, s, p, combine)
    return flat if flat is not None else _reduce_axis_by_slices(x, axis, out_size, k, s, p, combine,
                                                                identity)


def _reduce_windows(x: np.ndarray, node: Node, combine: np.ufunc, identity: float) -> np.ndarray:
    """combine(...) over every pooling window, one spatial axis at a time (a k x k window costs k + k
    passes, not k * k), padding clipped away rather than copied in; always a fresh array."""
    attrs = node.attrs
    out = x
    for axis in reversed(range(2, x.ndim)):
        i = axis - 2
        k, s, p, n_out = attrs["kernel"][i], attrs["stride"][i], attrs["padding"][i], node.type.shape[axis]
        if (k, s, p, n_out) != (1, 1, 0, x.shape[axis]):
            out = _reduce_axis(out, axis, n_out, k, s, p, combine, identity)
    return out.copy() if out is x else out


def max_pool(node: Node, args: list[Any]) -> np.ndarray:
    """Max pooling: 2D float32/float64 pools with stride 2 across as one compiled pass (pooling_jit.py)
    where numba runs; the rest (stride 1, where NumPy's whole-row taps win, and 1D/3D) per axis in NumPy."""
    x = args[0]
    attrs = node.attrs
    if jit.enabled_for(x.dtype) and x.ndim == 4 and attrs["stride"][1] == 2:
        (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
        out = np.empty((x.shape[0],) + tuple(node.type.shape[1:]), x.dtype)  # the batch: the input's
        pooling_jit.max_pool2d_(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, out)
        return out
    return _reduce_windows(x, node, np.maximum, -np.inf)


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
    out = _reduce_windows(x, node, np.add, 0.0)
    divisor = np.ones((), np.float64)
    for axis, (size, n_out, k, s, p) in enumerate(zip(x.shape[2:], node.type.shape[2:], attrs["kernel"],
                                                      attrs["stride"], attrs["padding"])):
        per_axis = avg_pool_divisor(size, n_out, k, s, p, attrs["count_include_pad"])
        divisor = np.multiply.outer(divisor, per_axis)
    out /= divisor.astype(x.dtype)
    return out


@functools.lru_cache(maxsize=64)
def _ones(size: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(size, dtype)
    ones.flags.writeable = False
    return ones


def global_avg_pool(node: Node, args: list[Any]) -> np.ndarray:
    """The mean of each (image, channel) plane: in float32 / float64 the planes as the rows of a matrix
    times a vector of ones (one BLAS GEMV, several sums at a time, vectorized), divided by the plane's
    size; NaN and inf propagate as in a sum. Measured (1 thread, float32, 2026-12-01, EfficientNet's
    maps, us, GEMV / NumPy mean / torch): 32 x 112 x 112 24 / 69 / 27, 144 x 56 x 56 26 / 78 / 45, 240 x
    28 x 28 15 / 54 / 25, 1152 x 7 x 7 6 / 34 / 12. Other dtypes take NumPy's mean."""
    x = args[0]
    planes = x.reshape(x.shape[0] * x.shape[1], -1)
    if x.dtype in (np.float32, np.float64) and planes.shape[1] > 1:
        means = planes @ _ones(planes.shape[1], x.dtype)
        means /= x.dtype.type(planes.shape[1])
    else:
        means = planes.mean(axis=1)
    return means.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


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
