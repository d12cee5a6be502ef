"""What both importers share: their errors, a collector that reports every problem at once, fresh
layer names, binding real weights to a layer's parameter slots, and reshapes expressed as flatten.

    problems = Problems("cannot import 'model.onnx'")
    problems.add("Gelu node '/act/Gelu'", "op Gelu is not supported")
    problems.raise_if_any()          # one ConvcError listing every entry
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from convc.dsl import Network, Value
from convc.errors import ConvcError
from convc.params import trailing_ones_stripped
from convc.types import TensorType


class FrontendError(ConvcError):
    """A model cannot be imported: an unsupported op or module, or a use convc's IR cannot express."""


class UnsupportedError(FrontendError):
    """The model uses ops or modules convc does not support (the message lists all of them)."""


class Problems:
    """Collects import problems so the user sees all of them in one error, not the first only."""

    def __init__(self, header: str) -> None:
        self.header = header
        self.entries: list[str] = []
        self.unsupported = False

    def add(self, where: str, message: str, *, unsupported: bool = False) -> None:
        entry = f"{where}: {message}"
        if entry not in self.entries:
            self.entries.append(entry)
        self.unsupported |= unsupported

    def __bool__(self) -> bool:
        return bool(self.entries)

    def raise_if_any(self) -> None:
        if not self.entries:
            return
        cls = UnsupportedError if self.unsupported else FrontendError
        count = f"{len(self.entries)} problem{'s' if len(self.entries) > 1 else ''}"
        raise cls(f"{self.header} ({count}):\n  " + "\n  ".join(self.entries))


class ImportedNetwork(Network):
    """A Network whose weights come from the source model: layers start as structure only (read-only
    zero parameters, no memory) instead of the He initialization a freshly written network gets."""

    def __init__(self, name: str = "net", seed: int = 0) -> None:
        super().__init__(name, seed, init=False)


def fresh_layer_name(net: Network, base: str, reserved: Iterable[str] = ()) -> str:
    """`base`, or `base_1`, `base_2`, ... : a name no node, parameter or reserved key uses yet."""
    taken = set(reserved)
    base = base or "node"

    def free(name: str) -> bool:
        return name not in net.graph and name not in taken

    if free(base):
        return base
    i = 1
    while not free(f"{base}_{i}"):
        i += 1
    return f"{base}_{i}"


def param_array(value: Any, copy: bool = True) -> np.ndarray:
    """A parameter array from a torch tensor or array-like: float64 stays, other floats become float32.
    It is a copy unless `copy=False` (a torch tensor's .numpy() shares the module's live memory)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.double() if str(value.dtype) == "torch.float64" else value.float()
        value = value.numpy()
    arr = np.asarray(value)
    return np.ascontiguousarray(arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=copy))


def _unusable_weight(value: Any) -> str | None:
    """Why `value` cannot be a weight (complex, no data, not numbers), or None."""
    if getattr(getattr(value, "device", None), "type", None) == "meta":
        return "is a meta-device tensor, which holds no data; load the weights before importing"
    if hasattr(value, "is_complex"):  # a torch tensor
        kind = "c" if value.is_complex() else "f"
    else:
        kind = np.asarray(value).dtype.kind
    if kind == "c":
        return f"holds complex values ({value.dtype}); convc computes with real numbers"
    if kind not in "fiub":
        return f"holds {value.dtype} values, not numbers"
    return None


def bind_param(net: Network, layer: Value, slot: str, key: str | None, value: Any, copy: bool = True) -> None:
    """Gives parameter `slot` of `layer` the real array `value`, stored under `key` (the source model's
    name for it, e.g. a state_dict key). A key already bound to the same array is shared (tied weights);
    one bound to a different array keeps the layer's own name '<layer>.<slot>'."""
    graph = net.graph
    node = graph.node(layer.name)
    current = graph.param_input(node, slot)
    if current is None:
        raise FrontendError(f"{node.op} '{layer.name}' has no parameter slot {slot!r}")
    why = _unusable_weight(value)
    if why is not None:
        raise FrontendError(f"{node.op} '{layer.name}': {slot} {why}")
    arr = param_array(value, copy)
    expected = graph.node(current).type.shape
    if trailing_ones_stripped(arr.shape) == trailing_ones_stripped(expected):
        arr = arr.reshape(expected)  # a linear's (O, C) weight as a 1x1 conv's, a (C, 1, 1) scale as (C,)
    if tuple(arr.shape) != expected:
        raise FrontendError(f"{node.op} '{layer.name}': {slot} has shape {tuple(arr.shape)}, "
                            f"expected {expected}")
    if key is not None and key != current and key in graph:
        other = graph.node(key)
        if other.op == "param" and np.array_equal(graph.params[key], arr):
            graph.replace_all_uses(current, key)
            graph.erase(current)
            return
        key = None  # the name is taken by something else: keep the layer's own parameter name
    if key is None or key == current:
        graph.params[current] = arr
        graph.replace_node(graph.node(current).replace(type=TensorType(arr.shape, _dtype_of(arr))))
        return
    graph.add_param(key, arr)
    graph.replace_all_uses(current, key)
    graph.erase(current)


def _dtype_of(arr: np.ndarray) -> str:
    return "float64" if arr.dtype == np.float64 else "float32"


def flatten_start_for(shape: tuple[int, ...], target: tuple[int, ...]) -> int | None:
    """The start_dim s >= 1 with shape[:s] + (prod(shape[s:]),) == target, if there is one."""
    for s in range(1, max(len(shape), 2)):
        if tuple(shape[:s]) + (math.prod(shape[s:]),) == tuple(target):
            return s
    return None


def resolve_target_shape(shape: tuple[int, ...], target: Iterable[int], *, zero_copies: bool,
                         where: str) -> tuple[int, ...]:
    """Fills one -1 (and, ONNX-style, each 0 when `zero_copies`) of a reshape target."""
    dims = [int(d) for d in target]
    if zero_copies:
        dims = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise FrontendError(f"{where}: reshape target {tuple(dims)} is not valid")
    total = math.prod(shape)
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or total % known:
            raise FrontendError(f"{where}: cannot reshape {shape} to {tuple(dims)}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total:
        raise FrontendError(f"{where}: cannot reshape {shape} ({total} values) to {tuple(dims)}")
    return tuple(dims)


def reshape_as_flatten(net: Network, x: Value, target: tuple[int, ...], name: str, where: str) -> Value:
    """A reshape the IR can express: none at all (same shape) or a flatten of trailing axes."""
    if tuple(target) == x.shape:
        return x
    start = flatten_start_for(x.shape, target)
    if start is None:
        raise FrontendError(f"{where}: reshape of {x.shape} to {tuple(target)} is not supported; convc "
                            f"supports reshapes that merge trailing axes, like (N, -1)")
    return net.flatten(x, start_dim=start, name=name)


def bias_add_constant(net: Network, x: Value, constant: np.ndarray, name: str, key: str | None,
                      where: str) -> Value:
    """x + c for a constant c that broadcasts over the batch: a bias_add layer with c spread to
    x.shape[1:] (named `key` only when c already has exactly that shape)."""
    c = np.asarray(constant, dtype=np.float64)
    fits = c.ndim <= len(x.shape)
    if fits:
        padded = c.reshape((1,) * (len(x.shape) - c.ndim) + c.shape)
        try:
            fits = np.broadcast_shapes(x.shape, padded.shape) == x.shape and padded.shape[0] == 1
        except ValueError:
            fits = False
    if not fits:
        raise FrontendError(f"{where}: adding a constant of shape {c.shape} to {x.shape} is not supported; "
                            f"the constant must broadcast over the batch without growing the tensor")
    bias = np.ascontiguousarray(np.broadcast_to(padded, x.shape)[0])
    y = net.bias_add(x, name=name)
    bind_param(net, y, "bias", key if c.shape == x.shape[1:] else None,
               bias.astype(np.float64 if np.asarray(constant).dtype == np.float64 else np.float32))
    return y


def channel_scale_constant(net: Network, x: Value, constant: Any, name: str, key: str | None,
                           where: str) -> Value:
    """x * c for a scalar or per-channel constant c ((C,), (C, 1, 1), (1, C, 1, 1), ...): a channel_scale
    layer whose weight is named `key` (the source model's name for c, e.g. ConvNeXt's layer_scale)."""
    c = np.asarray(constant)
    squeezed = c.reshape(c.shape[c.ndim - len(x.shape):]) if c.ndim > len(x.shape) and \
        all(d == 1 for d in c.shape[:c.ndim - len(x.shape)]) else c
    padded = squeezed.reshape((1,) * (len(x.shape) - squeezed.ndim) + squeezed.shape) \
        if squeezed.ndim <= len(x.shape) else squeezed
    channels = x.shape[1] if len(x.shape) > 1 else 1
    per_channel = padded.ndim == len(x.shape) and padded.shape[1] in (1, channels) and \
        all(d == 1 for i, d in enumerate(padded.shape) if i != 1)
    if not per_channel:
        raise FrontendError(f"{where}: multiplying {x.shape} by a constant of shape {tuple(c.shape)} is not "
                            f"supported; convc multiplies by a per-channel or scalar constant")
    dtype = np.float64 if c.dtype == np.float64 else np.float32
    scale = np.ascontiguousarray(np.broadcast_to(padded.reshape(-1), (channels,)), dtype=dtype)
    y = net.channel_scale(x, name=name)
    bind_param(net, y, "weight", key if c.size == channels else None, scale)
    return y
