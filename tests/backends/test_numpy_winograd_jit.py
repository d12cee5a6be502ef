"""The NumPy backend's Winograd kernels with their compiled transforms (conv_winograd_jit.py) and with
the NumPy passes (CONVC_NUMBA=0), both against torch float64: shapes that tile evenly and that overhang,
every padding, bias or none, epilogues whose leading ReLU the compiled output pass applies, NaN and inf
under the Winograd contract, and the compiled kernels really running when numba is on."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_numpy_conv import check, conv_graph, torch_conv

from convc.backends.numpy_ref import backend, conv_winograd_jit, jit
from convc.nonfinite import check_spread, finite_rel_err
from convc.numerics import budget

ALGOS = ("winograd_2x2", "winograd_4x4")
SWITCH = {"compiled": "1", "numpy": "0"}


@contextlib.contextmanager
def numba_switch(value: str) -> Iterator[None]:
    """CONVC_NUMBA set to `value` for the block (hypothesis tests cannot take the monkeypatch fixture)."""
    saved = os.environ.get(jit.SWITCH)
    os.environ[jit.SWITCH] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[jit.SWITCH]
        else:
            os.environ[jit.SWITCH] = saved


# (input shape, out channels, padding, bias, epilogue)
CASES = [
    ((1, 3, 8, 8), 4, 1, True, ()),
    ((2, 5, 9, 7), 3, 1, True, (("relu",),)),
    ((1, 2, 3, 3), 2, 0, False, (("relu",),)),
    ((1, 4, 13, 6), 5, ((2, 0), (0, 1)), True, (("add",), ("relu",))),
    ((2, 3, 5, 11), 4, 2, False, (("relu",), ("add",), ("tanh",))),
    ((1, 6, 14, 14), 6, 1, True, (("leaky_relu", 0.2),)),
]


@pytest.mark.parametrize("switch", SWITCH)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CASES, ids=[str(c[0]) for c in CASES])
def test_both_paths_match_torch(case: tuple, algo: str, dtype: str, switch: str) -> None:
    shape, out, pad, bias, epilogue = case
    with numba_switch(SWITCH[switch]):
        check(conv_graph(2, shape, out, 3, padding=pad, bias=bias, algo=algo, epilogue=epilogue), dtype)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 3), k=st.integers(1, 3),
       pads=st.tuples(*[st.integers(0, 2)] * 4), algo=st.sampled_from(ALGOS),
       dtype=st.sampled_from(["float32", "float64"]), relu=st.booleans())
def test_compiled_path_property_matches_torch(h: int, w: int, c: int, k: int, pads: tuple[int, ...],
                                              algo: str, dtype: str, relu: bool) -> None:
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    assume(h + pads[0] + pads[1] >= 3 and w + pads[2] + pads[3] >= 3)
    with numba_switch("1"):
        check(conv_graph(2, (1, c, h, w), k, 3, padding=padding, algo=algo,
                         epilogue=(("relu",),) if relu else ()), dtype)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("switch", SWITCH)
@pytest.mark.parametrize("algo", ALGOS)
def test_nan_and_inf_keep_the_winograd_contract(algo: str, switch: str) -> None:
    """A non-finite input pixel makes its output tiles non-finite (NaN through the fused ReLU too),
    never a number where torch has NaN or inf; the rest agrees with torch."""
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 10))
    x[0, 0, 0, 3], x[0, 1, 8, 9], x[1, 2, 4, 5], x[1, 0, 0, 0] = np.nan, np.inf, -np.inf, np.nan
    graph = conv_graph(2, x.shape, 5, 3, padding=1, algo=algo, epilogue=(("relu",),))
    pre = torch_conv(conv_graph(2, x.shape, 5, 3, padding=1), [x])
    with numba_switch(SWITCH[switch]):
        out = backend.compile(graph, dtype="float64").run(x)[0]
    ref = np.maximum(pre, 0)  # NaN stays NaN in np.maximum, as in torch.relu
    assert np.isnan(ref).any() and np.isinf(ref).any()
    assert check_spread(out, ref, int(algo[-3]), ~np.isfinite(pre)) is None
    assert finite_rel_err(out, ref) <= budget("float64", algo)


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
@pytest.mark.parametrize("algo", ALGOS)
def test_compiled_transforms_run_when_numba_is_on(algo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("winograd_input_", "winograd_output_"):
        kernel = getattr(conv_winograd_jit, name)
        monkeypatch.setattr(conv_winograd_jit, name,
                            lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    graph = conv_graph(2, (1, 2, 6, 6), 3, 3, padding=1, algo=algo)
    monkeypatch.setenv(jit.SWITCH, "0")
    check(graph, "float32")
    assert calls == []
    monkeypatch.setenv(jit.SWITCH, "1")
    check(graph, "float32")
    assert calls == ["winograd_input_", "winograd_output_"]


@pytest.mark.skipif(not jit.installed(), reason="numba is not installed")
def test_the_calibration_probes_run_the_compiled_transforms() -> None:
    """Backend.probes, as passes/cpu_profile.py reaches them through the registry: each returns a call of
    the compiled kernel on the asked shape, which runs."""
    from convc.registry import get_backend

    probes = get_backend("numpy").probes
    assert set(probes) == {"winograd_input", "winograd_output"}
    for name, probe in probes.items():
        call = probe("float32", 4, 3, 9)
        assert callable(call)
        call()
