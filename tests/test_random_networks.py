"""Seeded random networks (hypothesis): convs with random stride / padding / dilation / groups, pools,
activations, residual adds, concats, batch norms and a linear head, built twice from the same weights:
as a convc Network and as a torch float64 function written with torch.nn.functional. Every opt level on
the NumPy and torch backends in float64 must agree with torch to the float64 whole-model budget, and with
NaN / +inf / -inf at random input positions hold them exactly where torch does (Winograd: its documented
contract instead, convc/nonfinite.py)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from random_networks import Twin, poison, torch_reference, twins

import convc
from convc.dsl import Network
from convc.nonfinite import finite_rel_err, nan_never_passes, nonfinite_mismatch
from convc.numerics import budget, rel_err

FLOAT64 = budget("float64", whole_model=True)
LEVELS = (0, 1, 2)
BACKENDS = ("numpy", "torch")
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def compiled(t: Twin, backend: str, level: int) -> tuple[Any, list[str]]:
    """(the compiled model, the plan's algorithms) for `backend` at -O`level` in float64."""
    model = convc.compile(t.net, backend=backend, dtype="float64", opt_level=level)
    plan = getattr(model, "plan", None)
    return model, [lp.algo for lp in plan.layers] if plan is not None else []


@SETTINGS
@given(t=twins(), data=st.data())
def test_random_networks_agree_with_torch_in_float64(t: Twin, data: st.DataObject) -> None:
    x = np.random.default_rng(data.draw(st.integers(0, 1000))).standard_normal(t.net.graph.inputs[0].type.shape)
    expected = torch_reference(t, x)
    for backend in BACKENDS:
        for level in LEVELS:
            model, _ = compiled(t, backend, level)
            err = rel_err(model.run(x)[0], expected)
            assert err <= FLOAT64, f"{backend} -O{level}: rel_err {err:.3g} > {FLOAT64:.0e}"


@SETTINGS
@given(t=twins(), data=st.data())
def test_random_networks_keep_nan_and_inf_where_torch_does(t: Twin, data: st.DataObject) -> None:
    x = np.random.default_rng(data.draw(st.integers(0, 1000))).standard_normal(t.net.graph.inputs[0].type.shape)
    x = poison(data.draw, x)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = torch_reference(t, x)
        for backend in BACKENDS:
            for level in LEVELS:
                model, algos = compiled(t, backend, level)
                out = model.run(x)[0]
                where = f"{backend} -O{level} ({', '.join(algos) or 'default algorithms'})"
                if any(a.startswith("winograd") for a in algos):
                    # Winograd may spread non-finite values within a tile; never a number for a NaN/inf.
                    assert nan_never_passes(out, expected) is None, f"{where}: {nan_never_passes(out, expected)}"
                else:
                    assert nonfinite_mismatch(out, expected) is None, f"{where}: {nonfinite_mismatch(out, expected)}"
                assert finite_rel_err(out, expected) <= FLOAT64, where


@pytest.mark.parametrize("algo", ["winograd_2x2", "winograd_4x4"])
def test_winograd_in_a_random_network_keeps_its_contract(algo: str) -> None:
    """A fixed network with a Winograd-eligible conv pinned to Winograd: the network-level contract."""
    net = Network("wino", seed=4)
    x_value = net.input((2, 3, 9, 9))
    y = net.relu(net.conv2d(x_value, 4, 3, padding=1, name="conv"))
    net.output(net.max_pool2d(y, 2))
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9))
    x[0, 1, 4, 4], x[1, 0, 0, 8] = np.nan, -np.inf
    with np.errstate(invalid="ignore"):
        out = convc.compile(net, dtype="float64", opt_level=2, algo={"conv": algo}).run(x)[0]
        p = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
        expected = F.max_pool2d(F.relu(F.conv2d(torch.from_numpy(x), p["conv.weight"], p["conv.bias"],
                                                padding=1)), 2).numpy()
    assert nan_never_passes(out, expected) is None
    assert finite_rel_err(out, expected) <= FLOAT64
    assert np.isnan(out).sum() >= np.isnan(expected).sum() > 0
