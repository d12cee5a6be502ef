"""Every zoo model runs on the NumPy and the torch backends, with the same parameters and a small input,
and the two agree to float64 precision. Batch norms get random statistics so they are not the identity.
"""
from __future__ import annotations

import numpy as np
import pytest
from zoo_helpers import SMALL_OPTIONS

import convc
import convc.models
from convc.numerics import budget, rel_err


@pytest.mark.parametrize("name", sorted(SMALL_OPTIONS))
def test_numpy_and_torch_backends_agree(name: str) -> None:
    net = convc.models.get(name, seed=3, **SMALL_OPTIONS[name])
    net.randomize_batch_norm(seed=4)
    (x,) = net.graph.inputs
    data = np.random.default_rng(5).standard_normal(x.type.shape)
    # No passes and no numerics tracing: this compares the backends on the model exactly as written.
    options = {"dtype": "float64", "opt_level": 0, "check_numerics": False}
    (expected,) = convc.compile(net, backend="numpy", **options).run(data)
    (actual,) = convc.compile(net, backend="torch", **options).run(data)
    assert np.all(np.isfinite(expected)) and np.abs(expected).max() > 0
    assert rel_err(actual, expected) < budget("float64", whole_model=True)
