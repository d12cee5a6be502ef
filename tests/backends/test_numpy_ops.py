"""NumPy backend non-conv ops against torch.nn.functional in float64: normalization, activations,
softmax, maxout, add, concat, flatten, bias_add, dropout, identity and linear (with its epilogue)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convc
from convc.backends.numpy_ref import backend
from convc.dsl import Value
from convc.numerics import budget, rel_err

DTYPES = ("float32", "float64")
Tensor = torch.Tensor


def t64(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(a, np.float64))


def run_op(build: Callable[[convc.Network, list[Value]], Value], shapes: list[tuple[int, ...]],
           reference: Callable[[list[Tensor], dict[str, Tensor]], Tensor], dtype: str, seed: int = 0,
           scale: float = 1.0) -> np.ndarray:
    """Builds `build(net, inputs)`, gives every parameter random values, and checks the NumPy backend
    against `reference(inputs, params)` computed by torch in float64; returns the backend's output."""
    net = convc.Network("op_test")
    xs = [net.input(s, name=f"x{i}") for i, s in enumerate(shapes)]
    net.output(build(net, xs))
    net.graph.verify()
    rng = np.random.default_rng(seed)
    for key, value in net.graph.params.items():
        positive = key.endswith("var")  # variances must be positive
        fresh = rng.uniform(0.5, 1.5, value.shape) if positive else rng.standard_normal(value.shape)
        net.graph.params[key] = fresh.astype(np.float32)
    data = [(scale * rng.standard_normal(s)).astype(np.float32) for s in shapes]
    out = backend.compile(net.graph, dtype=dtype).run(*data)[0]
    expected = reference([t64(d) for d in data], {k: t64(v) for k, v in net.graph.params.items()}).numpy()
    assert out.dtype == np.dtype(dtype)
    assert rel_err(out, expected) <= budget(dtype), rel_err(out, expected)
    return out


def per_channel(v: Tensor, ndim: int) -> Tensor:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 7), (4, 3), (1, 2, 3, 3, 2)])
def test_batch_norm(shape: tuple[int, ...], dtype: str) -> None:
    run_op(lambda net, x: net.batch_norm(x[0], eps=1e-3, name="bn"), [shape],
           lambda x, p: F.batch_norm(x[0], p["bn.running_mean"], p["bn.running_var"], p["bn.weight"],
                                     p["bn.bias"], training=False, eps=1e-3), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_shift(dtype: str) -> None:
    run_op(lambda net, x: net._emit("scale_shift", [x[0]], {}, "ss"), [(2, 3, 4, 4)],
           lambda x, p: x[0] * per_channel(p["ss.weight"], 4) + per_channel(p["ss.bias"], 4), dtype)


LRN_SETTINGS = [(5, 1e-4, 0.75, 2.0), (2, 0.5, 0.5, 1.0), (3, 1.0, 1.0, 0.5), (1, 0.1, 0.6, 1.0),
                (8, 2.0, 0.75, 1.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, alpha, beta, k", LRN_SETTINGS)
@pytest.mark.parametrize("shape", [(2, 7, 4, 4), (2, 6, 5), (1, 5, 3, 3, 2)])
def test_lrn_matches_torch_local_response_norm(shape: tuple[int, ...], size: int, alpha: float, beta: float,
                                               k: float, dtype: str) -> None:
    run_op(lambda net, x: net.lrn(x[0], size=size, alpha=alpha, beta=beta, k=k), [shape],
           lambda x, p: F.local_response_norm(x[0], size, alpha, beta, k), dtype, scale=2.0)


ACTIVATIONS: list[tuple[str, dict, Callable[[Tensor], Tensor]]] = [
    ("relu", {}, F.relu),
    ("leaky_relu", {"negative_slope": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    ("sigmoid", {}, torch.sigmoid),
    ("tanh", {}, torch.tanh),
    ("elu", {"alpha": 0.5}, lambda x: F.elu(x, 0.5)),
]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no overflow in exp on extreme inputs
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, kw, reference", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activations(kind: str, kw: dict, reference: Callable[[Tensor], Tensor], dtype: str) -> None:
    run_op(lambda net, x: net.activation(x[0], kind, **kw), [(2, 3, 5)], lambda x, p: reference(x[0]), dtype)
    extreme = np.array([[-1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4]], np.float32)
    net = convc.Network("extreme")
    net.output(net.activation(net.input(extreme.shape), kind, **kw))
    out = backend.compile(net.graph, dtype=dtype).run(extreme)[0]
    expected = reference(t64(extreme)).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=budget(dtype), atol=1e-30)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, shape, scale", [(1, (3, 10), 1.0), (1, (2, 4, 3, 3), 1.0),
                                                (2, (2, 3, 6), 1.0), (1, (2, 5), 1000.0)])
def test_softmax_is_stable(axis: int, shape: tuple[int, ...], scale: float, dtype: str) -> None:
    run_op(lambda net, x: net.softmax(x[0], axis=axis), [shape],
           lambda x, p: torch.softmax(x[0], dim=axis), dtype, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, shape", [(2, (2, 6, 3, 3)), (3, (2, 6, 4)), (4, (3, 8))])
def test_maxout(k: int, shape: tuple[int, ...], dtype: str) -> None:
    def reference(x: list[Tensor], p: dict[str, Tensor]) -> Tensor:
        # channel c of the result is max over input channels c*k .. c*k + k - 1
        groups = [x[0][:, c * k:(c + 1) * k].amax(dim=1) for c in range(shape[1] // k)]
        return torch.stack(groups, dim=1)

    run_op(lambda net, x: net.maxout(x[0], k), [shape], reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add(dtype: str) -> None:
    run_op(lambda net, x: net.add(x[0], x[1]), [(2, 3, 4, 4)] * 2, lambda x, p: x[0] + x[1], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_of_a_value_with_itself(dtype: str) -> None:
    run_op(lambda net, x: net.add(x[0], x[0]), [(2, 3)], lambda x, p: 2 * x[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, shapes", [(1, [(2, 3, 4, 4), (2, 1, 4, 4), (2, 5, 4, 4)]),
                                          (2, [(1, 2, 3, 5), (1, 2, 4, 5)]), (1, [(2, 3)])])
def test_concat(axis: int, shapes: list[tuple[int, ...]], dtype: str) -> None:
    run_op(lambda net, x: net.concat(x, axis=axis), shapes, lambda x, p: torch.cat(x, dim=axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("start_dim", [1, 2])
def test_flatten(start_dim: int, dtype: str) -> None:
    run_op(lambda net, x: net.flatten(x[0], start_dim=start_dim), [(2, 3, 4, 5)],
           lambda x, p: torch.flatten(x[0], start_dim), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_add_per_position(dtype: str) -> None:
    run_op(lambda net, x: net.bias_add(x[0], name="b"), [(2, 1, 5, 5)],
           lambda x, p: x[0] + p["b.bias"][None], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["dropout", "identity"])
def test_dropout_and_identity_pass_through(op: str, dtype: str) -> None:
    build = (lambda net, x: net.dropout(x[0], 0.5)) if op == "dropout" else \
        (lambda net, x: net._emit("identity", [x[0]], {}, "id"))
    run_op(build, [(2, 3, 4)], lambda x, p: x[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias: bool, dtype: str) -> None:
    def reference(x: list[Tensor], p: dict[str, Tensor]) -> Tensor:
        return F.linear(x[0], p["fc.weight"], p.get("fc.bias"))

    run_op(lambda net, x: net.linear(x[0], 7, bias=bias, name="fc"), [(3, 11)], reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("epilogue", [(("relu",),), (("sigmoid",),), (("add",), ("tanh",), ("add",)),
                                      (("leaky_relu", 0.3), ("add",), ("elu", 2.0))])
def test_linear_with_fused_epilogue(epilogue: tuple, dtype: str) -> None:
    n_add = sum(step[0] == "add" for step in epilogue)

    def build(net: convc.Network, x: list[Value]) -> Value:
        y = net.linear(x[0], 4, name="fc")
        node = net.graph["fc"]
        residuals = tuple(v.name for v in x[1:])
        net.graph.replace_node(node.replace(attrs={**node.attrs, "epilogue": epilogue},
                                            inputs=(node.inputs[0], *residuals, *node.inputs[1:])))
        return y

    def reference(x: list[Tensor], p: dict[str, Tensor]) -> Tensor:
        y = F.linear(x[0], p["fc.weight"], p["fc.bias"])
        residuals = iter(x[1:])
        for step in epilogue:
            y = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "add": lambda v: v + next(residuals),
                 "leaky_relu": lambda v: F.leaky_relu(v, step[1]),
                 "elu": lambda v: F.elu(v, step[1])}[step[0]](y)
        return y

    out = run_op(build, [(3, 6)] + [(3, 4)] * n_add, reference, dtype)
    assert out.shape == (3, 4)
