"""The compiled epilogue (epilogue_jit) against torch in float64 and against the NumPy path: every step
kind in random chains, both dtypes, per-channel and per-row parameters, NaN and inf, and the dispatch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.backends.numpy_ref import epilogue, epilogue_jit, exp_jit, jit
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba is not installed")

ACTIVATIONS = [("relu",), ("leaky_relu", 0.1), ("sigmoid",), ("tanh",), ("elu", 0.7), ("clip", -0.5, 1.5),
               ("hardswish",), ("hardsigmoid",), ("silu",), ("gelu",), ("gelu_tanh",)]
STEPS = st.lists(st.sampled_from(ACTIVATIONS + [("add",)]), max_size=5).map(tuple)


def torch_step(t: torch.Tensor, step: tuple) -> torch.Tensor:
    kind, args = step[0], step[1:]
    if kind == "clip":
        return torch.clamp(t, *args)
    if kind == "gelu_tanh":
        return F.gelu(t, approximate="tanh")
    if kind in ("leaky_relu", "elu"):
        return getattr(F, kind)(t, *args)
    return getattr(F, kind)(t)


def torch_epilogue(y: np.ndarray, scale: np.ndarray | None, bias: np.ndarray | None, steps: tuple,
                   residuals: list[np.ndarray]) -> np.ndarray:
    t = torch.from_numpy(y.astype(np.float64))
    rows = (y.shape[0], -1) + (1,) * (y.ndim - 2)
    for per_row, add in ((scale, False), (bias, True)):
        if per_row is not None:
            p = torch.from_numpy(per_row.astype(np.float64))
            p = p.reshape((1, -1) + (1,) * (y.ndim - 2)) if per_row.size == y.shape[1] else p.reshape(rows)
            t = t + p if add else t * p
    pending = iter(residuals)
    for step in steps:
        if step[0] == "add":
            t = t + torch.from_numpy(next(pending).astype(np.float64))
        else:
            t = torch_step(t, step)
    return t.numpy()


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(2, 3, 5, 7), (1, 4, 1), (3, 10), (2, 2, 3, 2, 2), (1, 3, 48, 50)]),
       steps=STEPS, with_bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 16))
def test_compiled_chains_match_torch_float64(shape: tuple[int, ...], steps: tuple, with_bias: bool,
                                             dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal(shape) * 3).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype) if with_bias else None
    residuals = [rng.standard_normal(shape).astype(dtype) for step in steps if step[0] == "add"]
    expected = torch_epilogue(y, None, bias, steps, residuals)
    assert epilogue_jit.applicable(y, *residuals)
    out = epilogue.apply_epilogue(y, bias, steps, residuals)
    assert out is y and out.dtype == dtype
    assert rel_err(out, expected) <= budget(np.dtype(dtype).name)


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.sampled_from([("relu",), ("add",), ("clip", 0.0, 6.0), ("leaky_relu", 0.2)]),
                      max_size=6).map(tuple),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_exact_steps_give_the_numpy_paths_bits(steps: tuple, dtype: type, seed: int) -> None:
    """Bias, ReLU, clip, leaky ReLU and residual adds round exactly as NumPy's ufuncs do, also across
    the compiled blocks' edges and for chains of more than two adds (several compiled calls)."""
    rng = np.random.default_rng(seed)
    shape = (2, 3, 37, 41)  # 9102 elements: 5 blocks, rows crossing block edges
    y = rng.standard_normal(shape).astype(dtype)
    y.flat[::97] = np.nan
    bias = rng.standard_normal(3).astype(dtype)
    residuals = [rng.standard_normal(shape).astype(dtype) for step in steps if step[0] == "add"]
    compiled = epilogue_jit.run_epilogue(y.copy(), bias, steps, residuals)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(jit.SWITCH, "0")
        reference = epilogue.apply_epilogue(y.copy(), bias, steps, residuals)
    np.testing.assert_array_equal(compiled, reference)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 100.0, -100.0, 1e30,
                    -1e30])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", ACTIVATIONS, ids=lambda s: s[0])
def test_nan_and_inf_as_torch(step: tuple, dtype: type) -> None:
    """Each activation on NaN, +-inf, +-0 and huge values: torch's NaN positions and infinities, finite
    values within the budget (silu(-inf) and gelu(-inf) are NaN, sigmoid(-inf) = 0, relu(NaN) = NaN)."""
    x = SPECIAL.astype(dtype).reshape(1, 1, -1)
    expected = torch_step(torch.from_numpy(x.astype(np.float64)), step).numpy()
    with np.errstate(over="ignore"):
        got = epilogue_jit.run_epilogue(x.copy(), None, (step,), [])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(got[infinite], expected[infinite])
    finite = np.isfinite(expected)
    tolerance = budget(np.dtype(dtype).name) * (1 + np.abs(x[finite]))
    assert np.all(np.abs(got[finite] - expected[finite]) <= tolerance)


@pytest.mark.parametrize("kind", ["gelu", "silu", "sigmoid", "gelu_tanh"])
def test_float32_transcendentals_pointwise_over_a_wide_range(kind: str) -> None:
    """The vectorized float32 exp behind sigmoid / SiLU / GELU, pointwise against torch float64 over
    [-100, 100]: the closed forms' error plus float32 roundings, as the NumPy path's test allows."""
    x = np.concatenate([np.linspace(-100, 100, 40001), np.linspace(-12, 12, 24001)])
    expected = torch_step(torch.from_numpy(x), (kind,)).numpy()
    got = epilogue_jit.run_epilogue(x.astype(np.float32).reshape(1, 1, -1), None, ((kind,),), [])[0, 0]
    bound = 3e-7 + 3 * np.finfo(np.float32).eps * np.abs(x)
    assert np.all(np.abs(got - expected) <= bound)


def test_exp32_within_one_epsilon_and_its_limits() -> None:
    @jit.kernel
    def exp_all(x, out):  # type: ignore[no-untyped-def]
        for i in range(x.size):
            out[i] = exp_jit.exp32(x[i])

    x = np.concatenate([np.linspace(-110, 95, 100001), [np.nan, np.inf, -np.inf, 0.0]]).astype(np.float32)
    got = np.empty_like(x)
    exp_all(x, got)
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(np.float64))
    normal = (expected > np.finfo(np.float32).tiny) & (expected < np.finfo(np.float32).max)
    assert np.max(np.abs(got[normal] - expected[normal]) / expected[normal]) <= np.finfo(np.float32).eps
    subnormal = expected <= np.finfo(np.float32).tiny
    assert np.max(np.abs(got[subnormal] - expected[subnormal])) <= 2e-45
    assert np.isnan(got[-4]) and got[-3] == np.inf and got[-2] == 0 and got[-1] == 1
    assert np.all(got[x > 88.73] == np.inf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fresh_output_from_a_source_with_per_row_scale(dtype: type) -> None:
    """out = relu(x * s[n, c] + b[c]) from a separate source (squeeze-excitation's x * s, batch norm):
    the source is untouched, per-(image, channel) scales repeat correctly across images."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 6, 5)).astype(dtype)
    scale = rng.standard_normal((3, 4, 1, 1)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype)
    before = x.copy()
    out = epilogue_jit.run_epilogue(np.empty_like(x), bias, (("relu",),), [], source=x, scale=scale)
    np.testing.assert_array_equal(x, before)
    assert rel_err(out, torch_epilogue(x, scale.reshape(-1), bias, (("relu",),), [])) <= budget(
        np.dtype(dtype).name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_channels_last_output_seen_as_nchw_runs_compiled_in_place(dtype: type) -> None:
    """Depthwise rows hand the epilogue an (N, C, H, W) view of channels-last memory: compiled on that
    memory, bias per channel, the same numbers as torch, written through the view."""
    rng = np.random.default_rng(5)
    memory = rng.standard_normal((2, 3, 4, 5)).astype(dtype)  # N, H, W, C
    view = np.moveaxis(memory, -1, 1)
    residual = np.moveaxis(rng.standard_normal((2, 3, 4, 5)).astype(dtype), -1, 1)
    bias = rng.standard_normal(5).astype(dtype)
    steps = (("silu",), ("add",), ("relu",))
    expected = torch_epilogue(view, None, bias, steps, [residual])
    out = epilogue.apply_epilogue(view, bias, steps, [residual])
    assert out is view and not view.flags.c_contiguous
    assert rel_err(memory.transpose(0, 3, 1, 2), expected) <= budget(np.dtype(dtype).name)


def test_dispatch_compiled_when_on_numpy_when_off_or_strided(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = epilogue_jit.run_epilogue
    monkeypatch.setattr(epilogue_jit, "run_epilogue", lambda *a, **k: calls.append(1) or real(*a, **k))
    y = np.ones((1, 2, 3, 3), np.float32)
    epilogue.apply_epilogue(y, None, (("relu",),), [])
    assert calls == [1]
    epilogue.apply_epilogue(np.ones((1, 2, 3, 6), np.float32)[..., ::2], None, (("relu",),), [])  # strided
    epilogue.apply_epilogue(y, None, (("add",),), [np.ones((1, 2, 3, 3), np.float64)])  # dtype differs
    epilogue.apply_epilogue(y.astype(np.float16), None, (("relu",),), [])
    monkeypatch.setenv(jit.SWITCH, "0")
    epilogue.apply_epilogue(y, None, (("relu",),), [])
    assert calls == [1]


def test_silu32_over_its_clamps_and_limits() -> None:
    """silu32's own clamped exp: within the pointwise bound of float64 on both sides of its clamps
    (x = -87 and -88), NaN for NaN and -inf, inf for inf, -0 far below."""
    @jit.kernel
    def silu_all(x, out):  # type: ignore[no-untyped-def]
        for i in range(x.size):
            out[i] = exp_jit.silu32(x[i])

    x = np.concatenate([np.linspace(-95, 95, 100001), np.linspace(-88.5, -86.5, 2001),
                        [np.nan, np.inf, -np.inf, -1e30, 1e30]]).astype(np.float32)
    got = np.empty_like(x)
    silu_all(x, got)
    finite = np.isfinite(x) & (np.abs(x) < 1e29)
    wide = x[finite].astype(np.float64)
    expected = wide / (1 + np.exp(-wide))
    assert np.all(np.abs(got[finite] - expected) <= 3e-7 + 2 * np.finfo(np.float32).eps * np.abs(wide))
    assert np.isnan(got[-5]) and got[-4] == np.inf and np.isnan(got[-3])
    assert got[-2] == 0 and got[-1] == np.float32(1e30)
