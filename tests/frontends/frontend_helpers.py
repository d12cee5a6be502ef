"""Helpers the frontend tests share: float64 torch references and a convc run of the same network."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import convc
from convc.numerics import budget, rel_err
from torch_zoo import randomize_batch_norm  # noqa: F401  (the frontend tests import it from here)


def torch_reference(model: nn.Module, *inputs: torch.Tensor) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in outs]


def run_convc(net: convc.Network, *inputs: np.ndarray, dtype: str = "float64") -> list[np.ndarray]:
    return convc.compile(net, backend="numpy", dtype=dtype).run(*inputs)


def assert_matches(actual: list[np.ndarray], expected: list[np.ndarray], dtype: str = "float64",
                   tolerance: float | None = None) -> None:
    """Same shapes, and a relative error within the whole-model budget of `dtype` (or `tolerance`)."""
    assert len(actual) == len(expected)
    limit = budget(dtype, whole_model=True) if tolerance is None else tolerance
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert rel_err(a, e) < limit, rel_err(a, e)
