"""2D max pooling with stride 2 as one compiled pass (numba, through jit.py): per output row, the
maximum over the window's input rows into a row buffer, then over each window's columns of that row.

    max_pool2d_(x, kh, kw, sh, sw, ph, pw, out)     # x (N, C, H, W) -> out (N, C, OH, OW), sw == 2 fastest

The NumPy path (pooling.py) takes one strided pass over the tensor per tap and axis (3 + 3 for a 3x3
window, each a trip through memory for a 112 x 112 map); here each input row is read from memory once
and combined in the cache. The column step reads every other element of the row buffer; it vectorizes
only when the compiler sees the stride and the window width as constants, so 3-wide and 2-wide windows
at stride 2 (ResNet's stem pool, GoogLeNet's and VGG's pools) have their own loops. Measured (1 thread,
float32, ResNet-50's 64 x 112 x 112 stem pool): 0.25 ms against NumPy's 0.69 (bench/NOTES.md, r50).

Windows are clipped to the input (padding never read, as torch's max pooling ignores it), so a
ceil-mode window hanging past the end works too. NaN wins every comparison, as in torch.
"""
from __future__ import annotations

import numpy as np

from convc.backends.numpy_ref import jit


@jit.inline
def _nan_max(acc: float, value: float) -> float:
    """max(acc, value), NaN if either is (`|` rather than `or`: no branch, so loops vectorize)."""
    return value if (value > acc) | (value != value) else acc


@jit.inline
def _clipped_max(row: np.ndarray, start: int, k: int) -> float:
    """The maximum of row[start:start + k] clipped to the row (never empty: a window overlaps it)."""
    lo, hi = max(0, start), min(row.size, start + k)
    acc = row[lo]
    for i in range(lo + 1, hi):
        acc = _nan_max(acc, row[i])
    return acc


@jit.kernel
def max_pool2d_(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, out: np.ndarray) -> None:
    """out[n, c, oy, ox] = max of x[n, c, iy, ix] over iy in [oy*sh - ph, +kh), ix in [ox*sw - pw, +kw),
    clipped to the input; x and out C-contiguous."""
    batch, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    row = np.empty(width, x.dtype)
    # output columns whose whole window lies inside the input: no clipping in their loop
    first = min(out_w, (pw + sw - 1) // sw)
    last = max(first, min(out_w, (width - kw + pw) // sw + 1))
    for n in range(batch):
        for c in range(channels):
            for oy in range(out_h):
                top = max(0, oy * sh - ph)
                bottom = min(height, oy * sh - ph + kh)
                for ix in range(width):
                    row[ix] = x[n, c, top, ix]
                for iy in range(top + 1, bottom):
                    for ix in range(width):
                        row[ix] = _nan_max(row[ix], x[n, c, iy, ix])
                if sw == 2 and kw == 3:
                    for ox in range(first, last):
                        start = 2 * ox - pw
                        out[n, c, oy, ox] = _nan_max(_nan_max(row[start], row[start + 1]), row[start + 2])
                elif sw == 2 and kw == 2:
                    for ox in range(first, last):
                        start = 2 * ox - pw
                        out[n, c, oy, ox] = _nan_max(row[start], row[start + 1])
                else:
                    for ox in range(first, last):
                        out[n, c, oy, ox] = _clipped_max(row, ox * sw - pw, kw)
                for ox in range(first):
                    out[n, c, oy, ox] = _clipped_max(row, ox * sw - pw, kw)
                for ox in range(last, out_w):
                    out[n, c, oy, ox] = _clipped_max(row, ox * sw - pw, kw)
