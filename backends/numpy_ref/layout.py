"""Ops that move channels: channel shuffle (a transpose of the channel axis split in two) and slices.

    channel_shuffle(x, groups=2): (N, C, ...) -> (N, 2, C/2, ...) -> swap the two -> (N, C, ...)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.ir import Node


def channel_shuffle(node: Node, args: list[Any]) -> np.ndarray:
    x = args[0]
    g = node.attrs["groups"]
    split = x.reshape((x.shape[0], g, x.shape[1] // g) + x.shape[2:])
    return np.ascontiguousarray(split.swapaxes(1, 2)).reshape(x.shape)


def slice_(node: Node, args: list[Any]) -> np.ndarray:
    a = node.attrs
    index = [slice(None)] * args[0].ndim
    index[a["axis"]] = slice(a["start"], a["stop"])
    return np.ascontiguousarray(args[0][tuple(index)])


KERNELS = {
    ("channel_shuffle", None): channel_shuffle,
    ("slice", None): slice_,
}
