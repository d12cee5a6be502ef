"""The NumPy backend's standalone activations, add, squeeze-excitation mul, scale-shift, batch norm,
channel scale and layer norm: compiled (epilogue_jit.fresh, normalization_jit) and NumPy (CONVC_NUMBA=0)
both against torch in float64, NaN and inf included, operands never written."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.backends.numpy_ref import elementwise, jit, normalization
from convc.ir import Node
from convc.numerics import budget, rel_err

PATHS = ["1", "0"] if jit.installed() else ["0"]

UNARY: dict[str, tuple[dict[str, Any], Callable[[torch.Tensor], torch.Tensor]]] = {
    "relu": ({}, F.relu),
    "leaky_relu": ({"negative_slope": 0.2}, lambda t: F.leaky_relu(t, 0.2)),
    "sigmoid": ({}, torch.sigmoid),
    "tanh": ({}, torch.tanh),
    "elu": ({"alpha": 0.5}, lambda t: F.elu(t, 0.5)),
    "hardswish": ({}, F.hardswish),
    "hardsigmoid": ({}, F.hardsigmoid),
    "silu": ({}, F.silu),
    "clip": ({"min": -1.0, "max": 6.0}, lambda t: torch.clamp(t, -1.0, 6.0)),
    "gelu": ({"approximate": "none"}, F.gelu),
    "gelu/tanh": ({"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
}


def run(op: str, attrs: dict[str, Any], args: list[np.ndarray]) -> np.ndarray:
    kernel = {**elementwise.KERNELS, **normalization.KERNELS}[(op, None)]
    before = [a.copy() for a in args]
    out = kernel(Node("y", op, tuple(f"x{i}" for i in range(len(args))), attrs), args)
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)  # operands untouched
    return out


def check(got: np.ndarray, expected: np.ndarray, dtype: type) -> None:
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    assert rel_err(got[finite], expected[finite]) <= budget(np.dtype(dtype).name)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(UNARY))
def test_activations_match_torch(op: str, dtype: type, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jit.SWITCH, path)
    x = (np.random.default_rng(1).standard_normal((2, 5, 9, 11)) * 4).astype(dtype)
    x.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    attrs, reference = UNARY[op]
    with np.errstate(over="ignore", invalid="ignore"):
        got = run(op.split("/")[0], attrs, [x])
    check(got, reference(torch.from_numpy(x.astype(np.float64))).numpy(), dtype)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), hw=st.sampled_from([(1, 1), (3, 5), (17, 19)]),
       dtype=st.sampled_from([np.float32, np.float64]), gate_first=st.booleans(), path=st.sampled_from(PATHS),
       seed=st.integers(0, 2 ** 16))
def test_add_and_squeeze_excitation_mul(n: int, c: int, hw: tuple[int, int], dtype: type, gate_first: bool,
                                        path: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    y = rng.standard_normal((n, c) + hw).astype(dtype)
    gate = rng.standard_normal((n, c, 1, 1)).astype(dtype)
    tx, ty, tg = (torch.from_numpy(a.astype(np.float64)) for a in (x, y, gate))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(jit.SWITCH, path)
        check(run("add", {}, [x, y]), (tx + ty).numpy(), dtype)
        check(run("mul", {}, [gate, x] if gate_first else [x, gate]), (tx * tg).numpy(), dtype)
        check(run("mul", {}, [x, y]), (tx * ty).numpy(), dtype)  # no broadcast: NumPy's multiply


@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from([(2, 7), (1, 4, 13), (2, 3, 6, 5), (1, 2, 3, 4, 5)]),
       dtype=st.sampled_from([np.float32, np.float64]), path=st.sampled_from(PATHS),
       seed=st.integers(0, 2 ** 16))
def test_scale_shift_batch_norm_and_channel_scale(shape: tuple[int, ...], dtype: type, path: str,
                                                  seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = np.inf
    w, b, mean = (rng.standard_normal(c).astype(dtype) for _ in range(3))
    var = rng.uniform(0.1, 2, c).astype(dtype)
    t = [torch.from_numpy(a.astype(np.float64)) for a in (x, w, b, mean, var)]
    channel = (1, -1) + (1,) * (len(shape) - 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(jit.SWITCH, path)
        expected = t[0] * t[1].reshape(channel) + t[2].reshape(channel)
        check(run("scale_shift", {}, [x, w, b]), expected.numpy(), dtype)
        check(run("channel_scale", {}, [x, w]), (t[0] * t[1].reshape(channel)).numpy(), dtype)
        expected = F.batch_norm(t[0], t[3], t[4], t[1], t[2], training=False, eps=1e-5).numpy()
        check(run("batch_norm", {"eps": 1e-5}, [x, w, b, mean, var]), expected, dtype)


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(2, 5), (1, 7, 3), (2, 6, 17, 19), (1, 3, 2, 3, 4), (1, 1, 4, 4)]),
       dtype=st.sampled_from([np.float32, np.float64]), path=st.sampled_from(PATHS),
       offset=st.sampled_from([0.0, 1e3]), nonfinite=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_layer_norm_over_channels(shape: tuple[int, ...], dtype: type, path: str, offset: float,
                                  nonfinite: bool, seed: int) -> None:
    """Over axis 1, biased variance, positions in several compiled blocks (17 x 19 > 256), a large mean
    (no E[x^2] - E[x]^2 cancellation), NaN / inf poisoning exactly their own position."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) + offset).astype(dtype)
    if nonfinite and x.size > 2:
        x.flat[1], x.flat[-1] = np.nan, np.inf
    w, b = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    tx = torch.from_numpy(x.astype(np.float64)).movedim(1, -1)
    expected = F.layer_norm(tx, (shape[1],), torch.from_numpy(w.astype(np.float64)),
                            torch.from_numpy(b.astype(np.float64)), 1e-6).movedim(-1, 1).numpy()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(jit.SWITCH, path)
        with np.errstate(invalid="ignore"):
            got = run("layer_norm", {"eps": 1e-6}, [x, w, b])
    check(got, expected, dtype)
