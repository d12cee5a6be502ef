"""What an ONNX op handler works with: the node's context, and ONNX's padding attributes.

A handler takes (ctx, inputs, attrs): inputs are convc Values (run-time tensors), NumPy arrays (known at
import), `Padded` values (a zero Pad waiting to fold into the Conv or AveragePool that reads it) or None
(an omitted optional input); it returns the node's outputs in order.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convc.dsl import Network, Value
from convc.frontends.building import FrontendError, bind_param


@dataclass(frozen=True)
class Padded:
    """The output of a zero-valued Pad of spatial axes: `value` padded by `pads` ((lo, hi) per axis)."""

    value: Value
    pads: tuple[tuple[int, int], ...]


@dataclass
class OnnxCtx:
    """One node being converted: the network, its layer name, a label for errors, the model's opset,
    the ONNX names of its inputs (so unchanged initializers keep their names) and of its outputs."""

    net: Network
    name: str
    where: str
    opset: int
    input_names: list[str]
    initializers: set[str]
    output_names: list[str]
    consumed: set[str]  # tensor names some node reads, plus the graph outputs

    def value(self, v: Any, what: str) -> Value:
        if isinstance(v, Value):
            return v
        if isinstance(v, Padded):
            raise FrontendError(f"{what} comes from a Pad; convc folds a zero Pad only into the Conv or "
                                f"AveragePool that reads it")
        raise FrontendError(f"{what} must be a run-time tensor here, got a constant")

    def const(self, v: Any, what: str) -> np.ndarray:
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, Value):
            raise FrontendError(f"{what} must be a constant (an initializer), but it is computed at run "
                                f"time; convc layers take fixed weights")
        raise FrontendError(f"{what} is missing")

    def key(self, index: int) -> str | None:
        """The ONNX name of input `index` when it is an initializer (a parameter name worth keeping)."""
        name = self.input_names[index] if index < len(self.input_names) else ""
        return name if name in self.initializers else None

    def bind(self, layer: Value, slot: str, array: np.ndarray, key: str | None) -> None:
        bind_param(self.net, layer, slot, key, array, copy=False)  # arrays here are the importer's own

    def output_used(self, index: int) -> bool:
        return index < len(self.output_names) and self.output_names[index] in self.consumed


Handler = Callable[[OnnxCtx, list[Any], dict[str, Any]], Sequence[Any]]


def spatial_pads(ctx: OnnxCtx, attrs: dict[str, Any], spatial: tuple[int, ...], kernel: Sequence[int],
                  strides: Sequence[int], dilations: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """auto_pad / pads [x1_begin, x2_begin, ..., x1_end, x2_end, ...] -> ((lo, hi), ...) per axis."""
    nd = len(kernel)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pairs.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return tuple(pairs)
    if auto == "VALID":
        return ((0, 0),) * nd
    if auto != "NOTSET":
        raise FrontendError(f"auto_pad={auto!r} is not valid; ONNX allows NOTSET, SAME_UPPER, SAME_LOWER, "
                            "VALID")
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * nd))]
    if len(pads) != 2 * nd or any(p < 0 for p in pads):
        raise FrontendError(f"pads {pads} must be {2 * nd} non-negative integers")
    return tuple((pads[i], pads[i + nd]) for i in range(nd))


def int_attr(attrs: dict[str, Any], key: str, n: int, default: int) -> tuple[int, ...]:
    v = tuple(int(i) for i in attrs.get(key, [default] * n))
    if len(v) != n:
        raise FrontendError(f"{key} {v} must have {n} entries")
    return v
