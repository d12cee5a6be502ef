"""Loading parameters by name: every missing, unexpected or wrongly shaped key is reported at once."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from convc.errors import ParameterError
from convc.ir import Graph

# Training-only buffers that torch state_dicts carry and inference never reads.
IGNORED_SUFFIXES = (".num_batches_tracked",)


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy array from an array-like or a torch tensor (any device, any float dtype)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def trailing_ones_stripped(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(O, C, 1, 1) -> (O, C): a weight convc keeps as a 1x1 conv or per-channel scale where the source
    model has a linear layer or a (C, 1, 1) scale loads under the source's key and shape."""
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _array_problem(key: str, value: Any) -> tuple[np.ndarray | None, str | None]:
    """(array, None), or (None, why `value` cannot be the parameter `key`)."""
    device = getattr(getattr(value, "device", None), "type", None)
    if device == "meta":
        return None, f"{key}: a meta-device tensor holds no data; load real weights"
    try:
        arr = to_numpy(value)
    except (TypeError, ValueError, RuntimeError) as e:
        return None, f"{key}: cannot be read as an array ({type(e).__name__}: {e})"
    if arr.dtype.kind == "c":
        return None, f"{key}: complex ({arr.dtype}) values; convc parameters are real"
    if arr.dtype.kind != "f":
        return None, f"{key}: dtype {arr.dtype}; expected a floating-point array"
    return arr, None


def load_params(graph: Graph, mapping: Mapping[str, Any]) -> None:
    """Replaces `graph.params` values from `mapping` (strict: the key sets must match; shapes must match
    up to trailing size-1 axes, and are reshaped to the graph's).

    Everything is checked before anything is replaced: on error the graph keeps all its old values."""
    incoming = {k: v for k, v in mapping.items() if not k.endswith(IGNORED_SUFFIXES)}
    missing = sorted(set(graph.params) - set(incoming))
    unexpected = sorted(set(incoming) - set(graph.params))
    arrays: dict[str, np.ndarray] = {}
    bad_values = []
    for k in sorted(set(incoming) & set(graph.params)):
        arr, why = _array_problem(k, incoming[k])
        if why is not None:
            bad_values.append(why)
        else:
            arrays[k] = arr  # type: ignore[assignment]
    wrong = sorted(
        f"{k}: got {tuple(a.shape)}, expected {tuple(graph.params[k].shape)}"
        for k, a in arrays.items()
        if trailing_ones_stripped(a.shape) != trailing_ones_stripped(graph.params[k].shape)
    )
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(
            f"{k} {tuple(graph.params[k].shape)}" for k in missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(
            f"{k} {tuple(np.shape(incoming[k]))}" for k in unexpected))
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if bad_values:
        problems.append("bad values: " + "; ".join(bad_values))
    if problems:
        raise ParameterError(f"cannot load parameters into '{graph.name}' (nothing was loaded):\n  "
                             + "\n  ".join(problems))
    converted = {k: a.astype(graph.params[k].dtype, copy=True).reshape(graph.params[k].shape)
                 for k, a in arrays.items()}
    graph.params.update(converted)
