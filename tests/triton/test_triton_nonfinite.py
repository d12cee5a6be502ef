"""NaN and +-inf through every Triton kernel and fused epilogue, against torch in float64: the same NaN,
+inf and -inf positions (tl.maximum / tl.minimum alone return the other operand of a NaN, so relu, elu,
max pooling, maxout and the relu epilogues would turn a NaN into a number), and the finite values within
budget. Winograd is held to its documented contract instead (convc/nonfinite.py)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from random_networks import Twin, poison, torch_reference, twins
from triton_check import compile_triton, fuse, set_algo

import convc
from convc.dsl import Network, Value
from convc.nonfinite import check_spread, finite_rel_err, nan_never_passes, nonfinite_mismatch
from convc.numerics import budget

# The interpreter computes with NumPy, which warns on every inf - inf and NaN it meets: expected here.
pytestmark = [pytest.mark.usefixtures("small_blocks"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]

SHAPE = (2, 4, 6, 6)


def poisoned_input(shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    """Normal values with NaN, +inf and -inf in different channels, images and places (one NaN on the
    border, so padding paths see it)."""
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 2, 4] = np.inf
    x[1, 2, 3, 3] = -np.inf
    x[1, 3, 0, 5] = np.nan
    return x


def run_both(build: Callable[[Network, Value], Value], torch_fn: Callable[..., torch.Tensor],
             x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(triton float32 output, torch float64 output); torch_fn gets the input and the parameters by name."""
    net = Network("nonfinite", seed=1)
    y = build(net, net.input(x.shape))
    if not net.graph.outputs:  # builders that fuse an epilogue declare the output first, as the pass sees it
        net.output(y)
    params = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
    ref = torch_fn(torch.from_numpy(x.astype(np.float64)), params).numpy()
    return compile_triton(net).run(x)[0], ref


def assert_like_torch(out: np.ndarray, ref: np.ndarray) -> None:
    assert np.isnan(ref).any() or np.isinf(ref).any(), "the case must produce non-finite values"
    assert nonfinite_mismatch(out, ref) is None, nonfinite_mismatch(out, ref)
    assert finite_rel_err(out, ref) <= budget("float32")


ELEMENTWISE = {
    "relu": (lambda n, x: n.relu(x), lambda x, p: F.relu(x)),
    "elu": (lambda n, x: n.elu(x, 0.7), lambda x, p: F.elu(x, 0.7)),
    "leaky_relu": (lambda n, x: n.leaky_relu(x, 0.2), lambda x, p: F.leaky_relu(x, 0.2)),
    "sigmoid": (lambda n, x: n.sigmoid(x), lambda x, p: torch.sigmoid(x)),
    "tanh": (lambda n, x: n.tanh(x), lambda x, p: torch.tanh(x)),
    "max_pool": (lambda n, x: n.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
                 lambda x, p: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)),
    "avg_pool": (lambda n, x: n.avg_pool2d(x, 2), lambda x, p: F.avg_pool2d(x, 2)),
    "global_max_pool": (lambda n, x: n.global_max_pool(x), lambda x, p: torch.amax(x, (2, 3), keepdim=True)),
    "global_avg_pool": (lambda n, x: n.global_avg_pool(x), lambda x, p: torch.mean(x, (2, 3), keepdim=True)),
    "maxout": (lambda n, x: n.maxout(x, 2), lambda x, p: x.reshape(2, 2, 2, 6, 6).amax(2)),
    "softmax": (lambda n, x: n.softmax(n.flatten(x)), lambda x, p: torch.softmax(x.flatten(1), 1)),
    "add": (lambda n, x: n.relu(n.add(x, n.max_pool2d(x, 3, stride=1, padding=1))),
            lambda x, p: F.relu(x + F.max_pool2d(x, 3, stride=1, padding=1))),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_and_pooling_keep_nan_and_inf(name: str) -> None:
    out, ref = run_both(*ELEMENTWISE[name], poisoned_input())
    assert_like_torch(out, ref)


def test_softmax_row_with_inf_is_nan_like_torch() -> None:
    x = np.random.default_rng(2).normal(size=(3, 5)).astype(np.float32)
    x[0, 1] = np.inf
    x[1, :] = -np.inf
    x[2, 3] = -np.inf  # one -inf in a finite row: an exact 0
    out, ref = run_both(lambda n, v: n.softmax(v), lambda v, p: torch.softmax(v, 1), x)
    assert_like_torch(out, ref)


def conv_relu(net: Network, x: Value, algo: str | None, steps: tuple = (("relu",),)) -> Value:
    y = net.conv2d(x, 8, 3, padding=1, name="conv")
    set_algo(net, y, algo)
    net.output(y)
    fuse(net, y, steps)
    return y


def torch_conv(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.conv2d(x, p["conv.weight"], p["conv.bias"], padding=1)


EPILOGUES = {"relu": ((("relu",),), F.relu), "elu": ((("elu", 1.0),), F.elu),
             "leaky_relu": ((("leaky_relu", 0.1),), lambda t: F.leaky_relu(t, 0.1))}


@pytest.mark.parametrize("algo", ["direct", "im2col", "implicit_gemm"])
@pytest.mark.parametrize("act", EPILOGUES)
def test_fused_conv_epilogues_keep_nan(algo: str, act: str) -> None:
    steps, torch_act = EPILOGUES[act]
    out, ref = run_both(lambda n, x: conv_relu(n, x, algo, steps), lambda x, p: torch_act(torch_conv(x, p)),
                        poisoned_input())
    assert_like_torch(out, ref)


def test_fused_linear_relu_keeps_nan() -> None:
    def build(net: Network, x: Value) -> Value:
        y = net.linear(net.flatten(x), 5, name="fc")
        net.output(y)
        fuse(net, y, (("relu",),))
        return y

    out, ref = run_both(build, lambda x, p: F.relu(F.linear(x.flatten(1), p["fc.weight"], p["fc.bias"])),
                        poisoned_input())
    assert_like_torch(out, ref)


@pytest.mark.parametrize("algo,tile", [("winograd_2x2", 2), ("winograd_4x4", 4)])
def test_winograd_relu_keeps_its_contract(algo: str, tile: int) -> None:
    """A NaN/inf pixel may poison its whole output tile, but never becomes a number, and the tiles that
    read only finite pixels agree with torch."""
    x = poisoned_input((2, 4, 9, 10))
    conv_out: list[torch.Tensor] = []
    out, ref = run_both(lambda n, v: conv_relu(n, v, algo),
                        lambda v, p: F.relu(conv_out.append(torch_conv(v, p)) or conv_out[0]), x)
    # relu(-inf) is 0 in torch, so the tiles Winograd may poison are those of the conv's non-finite values.
    poisoned = ~np.isfinite(conv_out[0].numpy())
    assert check_spread(out, ref, tile, poisoned) is None, check_spread(out, ref, tile, poisoned)
    assert finite_rel_err(out, ref) <= budget("float32", algo)
    assert np.isnan(out).sum() >= np.isnan(ref).sum() > 0


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(t=twins(), data=st.data())
def test_random_networks_keep_nan_and_inf_where_torch_does(t: Twin, data: st.DataObject) -> None:
    """The seeded random networks of tests/random_networks.py with NaN/inf inputs, on Triton in float32."""
    shape = t.net.graph.inputs[0].type.shape
    x = poison(data.draw, np.random.default_rng(data.draw(st.integers(0, 1000))).standard_normal(shape))
    x = x.astype(np.float32)
    expected = torch_reference(t, x.astype(np.float64))
    for level in (0, 2):
        model = convc.compile(t.net, backend="triton", dtype="float32", device="cpu", opt_level=level)
        algos = [lp.algo for lp in model.plan.layers] if getattr(model, "plan", None) is not None else []
        out = model.run(x)[0]
        where = f"-O{level} ({', '.join(algos) or 'default algorithms'})"
        if any(a.startswith("winograd") for a in algos):
            assert nan_never_passes(out, expected) is None, f"{where}: {nan_never_passes(out, expected)}"
        else:
            assert nonfinite_mismatch(out, expected) is None, f"{where}: {nonfinite_mismatch(out, expected)}"
        assert finite_rel_err(out, expected) <= budget("float32", whole_model=True), where
