"""Conv and pool geometry normalised to three spatial axes, so one kernel serves 1D, 2D and 3D layers:
a 2D layer is a 3D one with depth 1, a 1D layer has depth and height 1.

    geo = ConvGeometry.of(node, input_type)    # geo.d, geo.h, geo.w, geo.kd, ..., geo.pad_lo == (pd, ph, pw)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from convc.ir import Node
from convc.types import TensorType


def spatial3(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(D, H, W) of an (N, C, *spatial) shape, padding missing leading axes with 1."""
    sp = tuple(shape[2:])
    if len(sp) > 3:
        raise ValueError(f"at most 3 spatial axes are supported, got shape {shape}")
    return (1,) * (3 - len(sp)) + sp  # type: ignore[return-value]


def pad3(values: tuple[int, ...], fill: int) -> tuple[int, int, int]:
    return (fill,) * (3 - len(values)) + tuple(values)  # type: ignore[return-value]


def pixels(t: TensorType) -> int:
    """Rows of the pixel matrix: N times the spatial size (just N for a 2-D tensor)."""
    return t.shape[0] * math.prod(t.shape[2:]) if t.rank >= 2 else 1


def channels(t: TensorType) -> int:
    return t.shape[1] if t.rank >= 2 else t.shape[0]


@dataclass(frozen=True)
class ConvGeometry:
    n: int
    c: int
    d: int
    h: int
    w: int
    o: int
    od: int
    oh: int
    ow: int
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]
    dilation: tuple[int, int, int]
    pad_lo: tuple[int, int, int]
    groups: int
    ndim: int

    @property
    def c_per_group(self) -> int:
        return self.c // self.groups

    @property
    def o_per_group(self) -> int:
        return self.o // self.groups

    @property
    def out_pixels(self) -> int:
        return self.n * self.od * self.oh * self.ow

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel)

    @staticmethod
    def of(node: Node, x: TensorType) -> ConvGeometry:
        a = node.attrs
        d, h, w = spatial3(x.shape)
        od, oh, ow = spatial3(node.type.shape)
        return ConvGeometry(
            n=x.shape[0], c=x.shape[1], d=d, h=h, w=w, o=a["out_channels"], od=od, oh=oh, ow=ow,
            kernel=pad3(a["kernel"], 1), stride=pad3(a["stride"], 1), dilation=pad3(a["dilation"], 1),
            pad_lo=pad3(tuple(lo for lo, _ in a["padding"]), 0), groups=a["groups"], ndim=len(a["kernel"]),
        )


@dataclass(frozen=True)
class PoolGeometry:
    n: int
    c: int
    d: int
    h: int
    w: int
    od: int
    oh: int
    ow: int
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]
    pad: tuple[int, int, int]

    @property
    def out_pixels(self) -> int:
        return self.n * self.od * self.oh * self.ow

    @staticmethod
    def of(node: Node, x: TensorType) -> PoolGeometry:
        a = node.attrs
        d, h, w = spatial3(x.shape)
        od, oh, ow = spatial3(node.type.shape)
        return PoolGeometry(n=x.shape[0], c=x.shape[1], d=d, h=h, w=w, od=od, oh=oh, ow=ow,
                            kernel=pad3(a["kernel"], 1), stride=pad3(a["stride"], 1), pad=pad3(a["padding"], 0))
