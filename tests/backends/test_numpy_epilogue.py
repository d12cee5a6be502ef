"""The NumPy backend's fused epilogue, whole-tensor and block by block: bias, activations and residual
adds against torch in float64, for any block size, including blocks that split an image's channels.
These test the NumPy path (CONVC_NUMBA=0); test_numpy_epilogue_jit.py tests the compiled one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.backends.numpy_ref import epilogue, jit
from convc.numerics import budget, rel_err

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
        mp.setenv(jit.SWITCH, "0")
        mp.setattr(epilogue, "EPILOGUE_BLOCKED_ABOVE_BYTES", 0 if blocked else 1 << 40)
        mp.setattr(epilogue, "EPILOGUE_BLOCK", block)
        out = epilogue.apply_epilogue(y, bias, steps, residuals)
    assert out is y  # in place
    assert rel_err(out, expected) <= 1e-12


@pytest.mark.parametrize("compiled", ["1", "0"])
def test_a_large_output_goes_block_by_block_and_nan_still_propagates(compiled: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jit.SWITCH, compiled)
    y = np.ones((1, 64, 160, 160), np.float32)
    y[0, 63, 159, 159] = np.nan
    assert y.nbytes > epilogue.EPILOGUE_BLOCKED_ABOVE_BYTES
    out = epilogue.apply_epilogue(y, np.full(64, -2.0, np.float32), (("relu",),), [])
    assert np.isnan(out[0, 63, 159, 159]) and np.count_nonzero(np.isnan(out)) == 1
    assert np.all(out[~np.isnan(out)] == 0)


TORCH_UNARY = {"gelu": F.gelu, "silu": F.silu, "sigmoid": torch.sigmoid}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(TORCH_UNARY))
def test_exp_activations_match_torch_float64_everywhere(kind: str, dtype: type) -> None:
    """GELU (float32: a closed-form erfc, A&S 7.1.26, instead of math.erf element by element), SiLU and
    sigmoid (exp(-x) may overflow to inf: the right limit): within budget from -100 to 100, both
    tails pointwise, and NaN / inf as torch's."""
    x = np.concatenate([np.linspace(-100, 100, 40001), np.linspace(-12, 12, 24001),
                        [np.nan, np.inf, -np.inf, 0.0, 1e-30, -1e-30]])
    expected = TORCH_UNARY[kind](torch.from_numpy(x)).numpy()
    got = epilogue.apply_activation_(x.astype(dtype), kind)
    assert got.dtype == dtype
    finite = np.isfinite(expected)
    name = np.dtype(dtype).name
    assert rel_err(got[finite], expected[finite]) <= budget(name)
    # pointwise: the closed form's 1.5e-7 plus roundings of x and of the result in the working dtype
    ulp = np.finfo(dtype).eps
    bound = 3e-7 + 2 * ulp * np.abs(x[finite]) if dtype == np.float32 else 1e-15 * (1 + np.abs(x[finite]))
    assert np.all(np.abs(got[finite] - expected[finite]) <= bound)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_float32_gelu_property_matches_torch(scale: float, seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(257) * scale
    expected = F.gelu(torch.from_numpy(x)).numpy()
    got = epilogue.apply_activation_(x.astype(np.float32), "gelu")
    assert rel_err(got, expected) <= budget("float32")
