"""The DSL calls of mobile and modern networks, mixed into `convc.Network`: hard activations, SiLU,
GELU, clip / relu6, the broadcasting multiply, layer norm over channels, channel shuffle, slices and
chunks along channels, and adaptive average pooling to any size.

    net = convc.Network("block")
    x = net.input((1, 32, 8, 8))
    s = net.sigmoid(net.conv2d(net.silu(net.conv2d(net.global_avg_pool(x), 8, 1)), 32, 1))
    y = net.mul(x, s)                            # (1, 32, 8, 8) * (1, 32, 1, 1): squeeze-excitation
    a, b = net.chunk(y, 2)                       # two (1, 16, 8, 8) halves
    z = net.channel_shuffle(net.concat([a, net.hardswish(b)]), 2)

Every call checks its operands as the seed ops do; a mistake names the layer, e.g.
`mul 'mul': operands f32[1,32,8,8] and f32[1,16,1,1] do not broadcast (axis 1: 32 vs 16)`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from convc.errors import DefinitionError
from convc.ops.activation import GELU_APPROXIMATIONS

if TYPE_CHECKING:
    from convc.dsl import Value


class ModernLayers:
    """Mixin of `Network` (which provides `_emit` and `_where`)."""

    _emit: Any
    _where: Any

    # ------------------------------------------------------------------ activations
    def clip(self, x: Value, min: float, max: float, name: str | None = None) -> Value:
        """min(max(x, min), max)."""
        for what, v in (("min", min), ("max", max)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
                raise DefinitionError(f"{self._where('clip', name)}: {what}={v!r} must be a number")
        if min > max:
            raise DefinitionError(f"{self._where('clip', name)}: min={min} must not exceed max={max}")
        return self._emit("clip", [x], {"min": float(min), "max": float(max)}, name)

    def relu6(self, x: Value, name: str | None = None) -> Value:
        return self.clip(x, 0.0, 6.0, name=name)

    def hardtanh(self, x: Value, min_val: float = -1.0, max_val: float = 1.0,
                 name: str | None = None) -> Value:
        return self.clip(x, min_val, max_val, name=name)

    def hardswish(self, x: Value, name: str | None = None) -> Value:
        return self._emit("hardswish", [x], {}, name)

    def hardsigmoid(self, x: Value, name: str | None = None) -> Value:
        return self._emit("hardsigmoid", [x], {}, name)

    def silu(self, x: Value, name: str | None = None) -> Value:
        return self._emit("silu", [x], {}, name)

    def gelu(self, x: Value, approximate: str = "none", name: str | None = None) -> Value:
        """GELU, exact (`approximate="none"`, via erf) or with torch's tanh approximation."""
        if approximate not in GELU_APPROXIMATIONS:
            raise DefinitionError(f"{self._where('gelu', name)}: approximate={approximate!r}; choose "
                                  f"{' or '.join(map(repr, GELU_APPROXIMATIONS))}")
        return self._emit("gelu", [x], {"approximate": approximate}, name)

    # ------------------------------------------------------------------ elementwise
    def mul(self, a: Value, b: Value, name: str | None = None) -> Value:
        """a * b; one operand may have size 1 where the other does not (NumPy broadcasting)."""
        return self._emit("mul", [a, b], {}, name)

    def scale_shift(self, x: Value, name: str | None = None) -> Value:
        """x * weight[c] + bias[c], one learned pair per channel (weight 1 and bias 0 to start)."""
        return self._emit("scale_shift", [x], {}, name, init={"weight": "ones", "bias": "zeros"})

    def channel_scale(self, x: Value, name: str | None = None) -> Value:
        """x * weight[c], one learned factor per channel (1 to start): a layer scale."""
        return self._emit("channel_scale", [x], {}, name, init={"weight": "ones"})

    def layer_norm(self, x: Value, eps: float = 1e-5, name: str | None = None) -> Value:
        """Normalizes every position over its channels (axis 1), with a learned weight and bias per channel:
        torch's LayerNorm(C) applied to the channels-last view of an NCHW tensor."""
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
            raise DefinitionError(f"{self._where('layer_norm', name)}: eps={eps!r} must be positive")
        return self._emit("layer_norm", [x], {"eps": float(eps)}, name,
                          init={"weight": "ones", "bias": "zeros"})

    # ------------------------------------------------------------------ channels
    def channel_shuffle(self, x: Value, groups: int, name: str | None = None) -> Value:
        if not isinstance(groups, int) or isinstance(groups, bool) or groups <= 0:
            raise DefinitionError(f"{self._where('channel_shuffle', name)}: groups={groups!r} must be a "
                                  f"positive int")
        return self._emit("channel_shuffle", [x], {"groups": groups}, name)

    def slice(self, x: Value, start: int, stop: int, axis: int = 1, name: str | None = None) -> Value:
        """x[:, start:stop] along `axis` (channels by default); negative bounds count from the end."""
        where = self._where("slice", name)
        for what, v in (("start", start), ("stop", stop), ("axis", axis)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise DefinitionError(f"{where}: {what}={v!r} must be an int")
        rank = len(x.shape)
        axis = axis % rank if -rank <= axis < rank else axis
        size = x.shape[axis] if 0 <= axis < rank else 0
        start, stop = (v + size if v < 0 else min(v, size) for v in (start, stop))
        return self._emit("slice", [x], {"axis": axis, "start": start, "stop": stop}, name)

    def split(self, x: Value, sizes: Sequence[int], axis: int = 1, name: str | None = None) -> list[Value]:
        """Consecutive slices of the given sizes along `axis`, named '<name>.0', '<name>.1', ..."""
        sizes = list(sizes)
        rank = len(x.shape)
        total = x.shape[axis % rank] if -rank <= axis < rank else None
        if not sizes or any(not isinstance(s, int) or s <= 0 for s in sizes) or sum(sizes) != total:
            raise DefinitionError(f"{self._where('split', name)}: sizes {sizes} must be positive ints adding "
                                  f"up to axis {axis} of {x.shape}")
        base = name or "split"
        out, start = [], 0
        for i, s in enumerate(sizes):
            out.append(self.slice(x, start, start + s, axis=axis, name=f"{base}.{i}"))
            start += s
        return out

    def chunk(self, x: Value, chunks: int, axis: int = 1, name: str | None = None) -> list[Value]:
        """torch.chunk: `chunks` slices of ceil(size / chunks) (the last may be smaller)."""
        rank = len(x.shape)
        if not isinstance(chunks, int) or chunks <= 0 or not -rank <= axis < rank:
            raise DefinitionError(f"{self._where('chunk', name)}: cannot cut axis {axis} of {x.shape} into "
                                  f"{chunks!r} chunks")
        size = x.shape[axis % rank]
        step = -(-size // chunks)
        sizes = [min(step, size - i) for i in range(0, size, step)]
        return self.split(x, sizes, axis=axis, name=name or "chunk")

    # ------------------------------------------------------------------ pooling
    def adaptive_avg_pool(self, x: Value, output_size: int | Sequence[int], name: str | None = None) -> Value:
        """torch's adaptive average pooling to any output size (per spatial axis, or one int for all)."""
        where = self._where("adaptive_avg_pool", name)
        nd = len(x.shape) - 2
        size = (output_size,) * nd if isinstance(output_size, int) else tuple(output_size)
        if nd < 1 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
            raise DefinitionError(f"{where}: output size {output_size!r} must be positive ints for the input "
                                  f"{x.shape}")
        return self._emit("adaptive_avg_pool", [x], {"output_size": size}, name)
