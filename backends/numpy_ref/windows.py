"""Which outputs of a sliding window read inside the input, per axis: what lets convolution gathers and
pooling clip their windows to the input instead of reading a padded copy.

    valid_outputs(size=5, out=5, offset=0, stride=1, low_pad=1) == (1, 5)   # output 0 would read x[-1]
"""
from __future__ import annotations


def valid_outputs(size: int, out: int, offset: int, stride: int, low_pad: int) -> tuple[int, int]:
    """The range [lo, hi) of output positions whose tap at kernel position `offset` (already times the
    dilation) reads inside an input axis of `size`, given the axis's low padding; lo >= hi when none.

        valid_outputs(size=5, out=5, offset=0, stride=1, low_pad=1) == (1, 5)   # output 0 reads x[-1]
    """
    first = offset - low_pad  # input position the tap reads for output 0
    lo = max(0, -(first // stride)) if first < 0 else 0  # ceil(-first / stride) for negative `first`
    hi = min(out, (size - 1 - first) // stride + 1) if size - 1 >= first else 0
    return lo, max(lo, hi)
