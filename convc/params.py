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


def load_params(graph: Graph, mapping: Mapping[str, Any]) -> None:
    """Replaces `graph.params` values from `mapping` (strict: the key sets must match)."""
    incoming = {k: v for k, v in mapping.items() if not k.endswith(IGNORED_SUFFIXES)}
    missing = sorted(set(graph.params) - set(incoming))
    unexpected = sorted(set(incoming) - set(graph.params))
    arrays = {k: to_numpy(v) for k, v in incoming.items() if k in graph.params}
    wrong = sorted(
        f"{k}: got {tuple(a.shape)}, expected {tuple(graph.params[k].shape)}"
        for k, a in arrays.items() if tuple(a.shape) != tuple(graph.params[k].shape)
    )
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(
            f"{k} {tuple(graph.params[k].shape)}" for k in missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(
            f"{k} {tuple(np.shape(to_numpy(incoming[k])))}" for k in unexpected))
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong))
    if problems:
        raise ParameterError(f"cannot load parameters into '{graph.name}':\n  " + "\n  ".join(problems))
    for k, a in arrays.items():
        if not np.issubdtype(a.dtype, np.floating):
            raise ParameterError(f"parameter {k} has dtype {a.dtype}; expected a floating-point array")
        graph.params[k] = a.astype(graph.params[k].dtype, copy=True)
