"""What every convolution kernel needs first: its operands unpacked, the input padded, and the fused
epilogue applied to its result.

    conv = ConvOperands.of(node, args)      # x, residuals, weight, bias and attributes, by name
    xp = conv.padded_input()                # zero padding, asymmetric (low, high) pairs per axis (scratch)
    return conv.finish(out)                 # bias + epilogue, in place on the kernel's fresh output
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from convc.backends.numpy_ref import epilogue_jit
from convc.backends.numpy_ref.epilogue import apply_epilogue
from convc.backends.numpy_ref.scratch import scratch

from convc.ir import Node
from convc.ops import epilogue_extra_inputs, input_scale_inputs


def padded_copy(x: np.ndarray, pads: list[tuple[int, int]]) -> np.ndarray:
    """x zero-padded by (low, high) per spatial axis, in this thread's reused "padded input" buffer: the
    interior copied, only the border strips zeroed (np.pad would allocate and page in a fresh array).

        padded_copy(x, [(1, 1), (1, 1)])   # (N, C, H + 2, W + 2)
    """
    shape = x.shape[:2] + tuple(size + lo + hi for size, (lo, hi) in zip(x.shape[2:], pads))
    xp = scratch("padded input", shape, x.dtype)
    everything = (slice(None), slice(None))
    xp[everything + tuple(slice(lo, lo + size) for size, (lo, _) in zip(x.shape[2:], pads))] = x
    for axis, (lo, hi) in enumerate(pads):
        before = everything + (slice(None),) * axis
        if lo:
            xp[before + (slice(0, lo),)] = 0
        if hi:
            xp[before + (slice(xp.shape[2 + axis] - hi, None),)] = 0
    return xp


def scaled_input(node: Node, x: np.ndarray, scale: np.ndarray,
                 weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, weight) of a conv whose input is first multiplied by scale (N, C, 1, ...), attrs["input_scale"]
    (squeeze-excitation's multiply, passes/fuse_input_scale.py): conv(x * s, W) = conv(x, W * s) per
    input channel, padding included (0 * s = 0), so for one image the smaller of the two is scaled: the
    weight (C_out x C x kernel) on large maps, x on the 7x7 and 14x14 ones. Either way NaN and inf meet
    the same products (x * s * w, associated differently)."""
    dtype = np.result_type(x, scale)
    by_weight = (x.shape[0] == 1 and node.attrs["groups"] == 1 and not node.attrs.get("weight_transformed")
                 and weight.size < x.size)
    if by_weight:
        factor = scale.reshape((1, -1) + (1,) * (weight.ndim - 2)).astype(np.result_type(weight, scale))
        return x.astype(dtype, copy=False), weight * factor
    if x.dtype == dtype and scale.dtype == dtype:
        compiled = epilogue_jit.fresh(x, scale=scale.reshape(-1))  # one pass, as the mul kernel's
        if compiled is not None:
            return compiled, weight
    return np.multiply(x, scale, dtype=dtype), weight


@dataclass(frozen=True)
class ConvOperands:
    node: Node
    x: np.ndarray
    residuals: tuple[np.ndarray, ...]
    weight: np.ndarray
    bias: np.ndarray | None

    @staticmethod
    def of(node: Node, args: list[Any]) -> ConvOperands:
        """Splits a conv node's operands: x, one residual per ("add",) step, the input scale when
        attrs["input_scale"] (applied here: x * scale), weight, then bias if any."""
        n_res = epilogue_extra_inputs(node.attrs)
        n_act = 1 + n_res + input_scale_inputs(node.attrs)
        x, weight = args[0], args[n_act]
        if input_scale_inputs(node.attrs):
            x, weight = scaled_input(node, x, args[n_act - 1], weight)
        bias = args[n_act + 1] if node.attrs["bias"] else None
        return ConvOperands(node, x, tuple(args[1:1 + n_res]), weight, bias)

    @property
    def groups(self) -> int:
        return int(self.node.attrs["groups"])

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.node.attrs["kernel"])

    @property
    def stride(self) -> tuple[int, ...]:
        return tuple(self.node.attrs["stride"])

    @property
    def dilation(self) -> tuple[int, ...]:
        return tuple(self.node.attrs["dilation"])

    @property
    def out_spatial(self) -> tuple[int, ...]:
        """Output spatial sizes, from the verified node type (the op schema's shape inference)."""
        return tuple(self.node.type.shape[2:])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.x.shape[0], self.node.attrs["out_channels"]) + self.out_spatial

    @property
    def kernel_size(self) -> int:
        return math.prod(self.kernel)

    def padded_input(self, extra_high: tuple[int, ...] | None = None) -> np.ndarray:
        """The input with the node's zero padding (plus `extra_high` more on each axis's high side); a
        scratch buffer when padded, so consume it before the kernel returns."""
        pads = [(lo, hi + (extra_high[i] if extra_high else 0))
                for i, (lo, hi) in enumerate(self.node.attrs["padding"])]
        if not any(lo or hi for lo, hi in pads):
            return self.x
        return padded_copy(self.x, pads)

    def finish(self, out: np.ndarray, *, bias_added: bool = False, steps_done: int = 0) -> np.ndarray:
        """Bias (unless the kernel already added it on the way) and the fused epilogue, in place on
        `out` (the kernel's own array), less its first `steps_done` steps (applied by the kernel)."""
        steps = tuple(self.node.attrs["epilogue"])[steps_done:]
        if bias_added and not steps:
            return out
        return apply_epilogue(out, None if bias_added else self.bias, steps, self.residuals)

    def channel_bias(self, ndim: int) -> np.ndarray | None:
        """The bias shaped (1, C, 1, ...) to broadcast over an array of `ndim` axes, or None."""
        return None if self.bias is None else self.bias.reshape((1, -1) + (1,) * (ndim - 2))
