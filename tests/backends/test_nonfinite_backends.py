"""NaN and +-inf through each op of the NumPy and torch backends, every conv algorithm included, against
torch float64: the same NaN, +inf and -inf positions and the finite values within the float64 budget
(Winograd: its tile contract, convc/nonfinite.py)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convc
from convc.dsl import Network, Value
from convc.nonfinite import check_spread, finite_rel_err, nonfinite_mismatch
from convc.numerics import budget

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")
Build = Callable[[Network, Value], Value]
Reference = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def poisoned(shape: tuple[int, ...]) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal(shape)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    flat[0, 0, 3], flat[0, 1, -2], flat[1, 2 % x.shape[1], 5], flat[1, 0, 0] = np.nan, np.inf, -np.inf, np.nan
    return x


def run_both(build: Build, reference: Reference, x: np.ndarray, backend: str, **options: object
             ) -> tuple[np.ndarray, np.ndarray]:
    net = Network("nf", seed=2)
    net.output(build(net, net.input(x.shape)))
    net.randomize_batch_norm(3)
    p = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
    out = convc.compile(net, backend=backend, dtype="float64", opt_level=0, **options).run(x)[0]  # type: ignore
    return out, reference(torch.from_numpy(x), p).numpy()


CASES: dict[str, tuple[tuple[int, ...], Build, Reference]] = {
    "relu": ((2, 4, 6, 6), lambda n, v: n.relu(v), lambda x, p: F.relu(x)),
    "elu": ((2, 4, 6, 6), lambda n, v: n.elu(v, 0.5), lambda x, p: F.elu(x, 0.5)),
    "leaky_relu": ((2, 4, 6, 6), lambda n, v: n.leaky_relu(v, 0.3), lambda x, p: F.leaky_relu(x, 0.3)),
    "sigmoid": ((2, 4, 6, 6), lambda n, v: n.sigmoid(v), lambda x, p: torch.sigmoid(x)),
    "tanh": ((2, 4, 6, 6), lambda n, v: n.tanh(v), lambda x, p: torch.tanh(x)),
    "max_pool2d": ((2, 4, 7, 7), lambda n, v: n.max_pool2d(v, 3, stride=2, padding=1, ceil_mode=True),
                   lambda x, p: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    "max_pool1d": ((2, 4, 9), lambda n, v: n.max_pool1d(v, 2), lambda x, p: F.max_pool1d(x, 2)),
    "max_pool3d": ((2, 4, 4, 4, 4), lambda n, v: n.max_pool3d(v, 2), lambda x, p: F.max_pool3d(x, 2)),
    "avg_pool2d": ((2, 4, 7, 7), lambda n, v: n.avg_pool2d(v, 3, stride=2, padding=1, count_include_pad=False),
                   lambda x, p: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    "global_max": ((2, 4, 5, 5), lambda n, v: n.global_max_pool(v), lambda x, p: x.amax((2, 3), keepdim=True)),
    "global_avg": ((2, 4, 5, 5), lambda n, v: n.global_avg_pool(v), lambda x, p: x.mean((2, 3), keepdim=True)),
    "maxout": ((2, 4, 5, 5), lambda n, v: n.maxout(v, 2), lambda x, p: x.reshape(2, 2, 2, 5, 5).amax(2)),
    "softmax": ((2, 4, 5, 5), lambda n, v: n.softmax(v), lambda x, p: torch.softmax(x, 1)),
    "lrn": ((2, 4, 5, 5), lambda n, v: n.lrn(v, size=3), lambda x, p: F.local_response_norm(x, 3, 1e-4, 0.75, 2.0)),
    "batch_norm": ((2, 4, 5, 5), lambda n, v: n.batch_norm(v, name="bn"),
                   lambda x, p: F.batch_norm(x, p["bn.running_mean"], p["bn.running_var"], p["bn.weight"],
                                             p["bn.bias"], False, 0.0, 1e-5)),
    "layer_norm": ((2, 4, 5, 5), lambda n, v: n.layer_norm(v, name="ln"),
                   lambda x, p: F.layer_norm(x.movedim(1, -1), (4,), p["ln.weight"], p["ln.bias"],
                                             1e-5).movedim(-1, 1)),
    "linear": ((2, 4, 3, 3), lambda n, v: n.linear(n.flatten(v), 5, name="fc"),
               lambda x, p: F.linear(x.flatten(1), p["fc.weight"], p["fc.bias"])),
    "concat_add": ((2, 4, 5, 5), lambda n, v: n.add(n.concat([v, v]), n.concat([n.relu(v), v])),
                   lambda x, p: torch.cat([x, x], 1) + torch.cat([F.relu(x), x], 1)),
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("name", CASES)
def test_ops_keep_nan_and_inf_like_torch(backend: str, name: str) -> None:
    shape, build, reference = CASES[name]
    out, ref = run_both(build, reference, poisoned(shape), backend)
    assert not np.isfinite(ref).all(), "the case must produce non-finite values"
    assert nonfinite_mismatch(out, ref) is None, nonfinite_mismatch(out, ref)
    assert finite_rel_err(out, ref) <= budget("float64")


@pytest.mark.parametrize("algo", ["direct", "im2col", "winograd_2x2", "winograd_4x4"])
def test_numpy_conv_algorithms_with_nan_and_inf(algo: str) -> None:
    x = poisoned((2, 3, 9, 10))
    net = Network("nf", seed=2)
    y = net.conv2d(net.input(x.shape), 5, 3, padding=1, name="conv")
    net.output(net.relu(y))
    net.graph.replace_node(net.graph.node("conv").replace(attrs={**net.graph.node("conv").attrs, "algo": algo}))
    p = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
    pre = F.conv2d(torch.from_numpy(x), p["conv.weight"], p["conv.bias"], padding=1)
    ref = F.relu(pre).numpy()
    out = convc.compile(net, backend="numpy", dtype="float64", opt_level=0).run(x)[0]
    if algo.startswith("winograd"):
        poisoned_tiles = ~np.isfinite(pre.numpy())  # relu(-inf) is 0, yet its tile read an inf
        assert check_spread(out, ref, int(algo[-3]), poisoned_tiles) is None
    else:
        assert nonfinite_mismatch(out, ref) is None, nonfinite_mismatch(out, ref)
    assert finite_rel_err(out, ref) <= budget("float64", algo)
