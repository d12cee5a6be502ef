"""The NumPy backend's fused epilogue, whole-tensor and block by block: bias, activations and residual
adds against torch in float64, for any block size, including blocks that split an image's channels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.backends.numpy_ref import epilogue
from convc.numerics import rel_err

STEPS = st.lists(st.sampled_from([("relu",), ("add",), ("leaky_relu", 0.1), ("sigmoid",), ("tanh",),
                                  ("elu", 0.7)]), max_size=4).map(tuple)


def torch_epilogue(y: np.ndarray, bias: np.ndarray | None, steps: tuple, residuals: list[np.ndarray]
                   ) -> np.ndarray:
    t = torch.from_numpy(y.copy())
    if bias is not None:
        t = t + torch.from_numpy(bias).reshape((1, -1) + (1,) * (y.ndim - 2))
    pending = iter(residuals)
    for step in steps:
        if step[0] == "add":
            t = t + torch.from_numpy(next(pending))
        elif step[0] == "relu":
            t = F.relu(t)
        elif step[0] == "leaky_relu":
            t = F.leaky_relu(t, step[1])
        elif step[0] == "elu":
            t = F.elu(t, step[1])
        else:
            t = getattr(torch, step[0])(t)
    return t.numpy()


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 6), st.integers(1, 6)),
       steps=STEPS, with_bias=st.booleans(), block=st.integers(1, 50), blocked=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_blocked_and_whole_epilogues_match_torch(shape: tuple[int, ...], steps: tuple, with_bias: bool,
                                                 block: int, blocked: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(shape)
    bias = rng.standard_normal(shape[1]) if with_bias else None
    residuals = [rng.standard_normal(shape) for step in steps if step[0] == "add"]
    expected = torch_epilogue(y, bias, steps, residuals)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(epilogue, "EPILOGUE_BLOCKED_ABOVE_BYTES", 0 if blocked else 1 << 40)
        mp.setattr(epilogue, "EPILOGUE_BLOCK", block)
        out = epilogue.apply_epilogue(y, bias, steps, residuals)
    assert out is y  # in place
    assert rel_err(out, expected) <= 1e-12


def test_a_large_output_goes_block_by_block_and_nan_still_propagates() -> None:
    y = np.ones((1, 64, 160, 160), np.float32)
    y[0, 63, 159, 159] = np.nan
    assert y.nbytes > epilogue.EPILOGUE_BLOCKED_ABOVE_BYTES
    out = epilogue.apply_epilogue(y, np.full(64, -2.0, np.float32), (("relu",),), [])
    assert np.isnan(out[0, 63, 159, 159]) and np.count_nonzero(np.isnan(out)) == 1
    assert np.all(out[~np.isnan(out)] == 0)
