"""Pooling, normalisation, elementwise, softmax, maxout, flatten, concat and linear on the Triton backend
(CPU interpreter) against the NumPy backend in float64, plus REFERENCE.md's pooling and softmax examples."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from triton_check import check, compile_triton

from convc.dsl import Network, Value

# GPU-sized blocks, so these small shapes still run several programs and K steps.
pytestmark = pytest.mark.usefixtures("small_blocks")

Builder = Callable[[Network, Value], Value]


def one_op(shape: tuple[int, ...], build: Builder, seed: int = 5) -> Network:
    net = Network("op", seed=seed)
    net.output(build(net, net.input(shape)))
    return net


POOLS: dict[str, tuple[tuple[int, ...], Builder]] = {
    "max2d": ((2, 5, 9, 8), lambda n, x: n.max_pool2d(x, 3, stride=2, padding=1)),
    "max2d_ceil": ((1, 4, 8, 7), lambda n, x: n.max_pool2d(x, 3, stride=2, ceil_mode=True)),
    "avg2d_pad_included": ((1, 6, 7, 7), lambda n, x: n.avg_pool2d(x, 3, stride=2, padding=1)),
    "avg2d_pad_excluded_ceil": ((2, 3, 8, 9), lambda n, x: n.avg_pool2d(x, (3, 2), stride=(2, 2), padding=(1, 1),
                                                                        ceil_mode=True, count_include_pad=False)),
    "avg2d_ceil_included": ((1, 3, 6, 6), lambda n, x: n.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)),
    "max1d": ((2, 6, 11), lambda n, x: n.max_pool1d(x, 3, stride=2, padding=1)),
    "avg1d": ((2, 6, 11), lambda n, x: n.avg_pool1d(x, 4, stride=3, ceil_mode=True)),
    "max3d": ((1, 3, 5, 6, 6), lambda n, x: n.max_pool3d(x, 2, stride=2, ceil_mode=True)),
    "avg3d": ((1, 3, 5, 6, 6), lambda n, x: n.avg_pool3d(x, 3, stride=2, padding=1, count_include_pad=False)),
    "global_avg": ((2, 20, 5, 7), lambda n, x: n.global_avg_pool(x)),
    "global_max": ((2, 20, 5, 7), lambda n, x: n.global_max_pool(x)),
    "global_avg_3d": ((1, 6, 3, 4, 5), lambda n, x: n.global_avg_pool(x)),
}

ELEMENTWISE: dict[str, tuple[tuple[int, ...], Builder]] = {
    "relu": ((2, 5, 6, 6), lambda n, x: n.relu(x)),
    "leaky_relu": ((2, 5, 6, 6), lambda n, x: n.leaky_relu(x, 0.3)),
    "sigmoid": ((2, 5, 6, 6), lambda n, x: n.sigmoid(x)),
    "tanh": ((3, 17), lambda n, x: n.tanh(x)),
    "elu": ((2, 5, 6, 6), lambda n, x: n.elu(x, 0.5)),
    "add": ((2, 5, 6, 6), lambda n, x: n.add(n.relu(x), n.sigmoid(x))),
    "add_same_operand": ((2, 5, 6, 6), lambda n, x: n.add(x, x)),
    "batch_norm": ((2, 6, 5, 5), lambda n, x: n.batch_norm(x, eps=1e-3)),
    "scale_shift": ((2, 6, 5, 5), lambda n, x: n._emit("scale_shift", [x], {}, "ss")),
    "bias_add": ((2, 4, 5, 5), lambda n, x: n.bias_add(x)),
    "bias_add_2d": ((3, 9), lambda n, x: n.bias_add(x)),
    "lrn": ((2, 7, 4, 4), lambda n, x: n.lrn(x, size=5, alpha=1e-2, beta=0.75, k=2.0)),
    "lrn_even_size": ((1, 6, 3, 3), lambda n, x: n.lrn(x, size=4, alpha=0.5, beta=0.6, k=1.0)),
    "maxout": ((2, 12, 4, 3), lambda n, x: n.maxout(x, 3)),
    "maxout_2d": ((3, 10), lambda n, x: n.maxout(x, 2)),
    "softmax_channels": ((2, 10), lambda n, x: n.softmax(x)),
    "softmax_channels_4d": ((2, 7, 3, 3), lambda n, x: n.softmax(x, axis=1)),
    "softmax_spatial": ((2, 3, 4, 5), lambda n, x: n.softmax(x, axis=2)),
    "softmax_last": ((2, 3, 4, 5), lambda n, x: n.softmax(x, axis=3)),
    "softmax_batch": ((3, 4, 2, 2), lambda n, x: n.softmax(x, axis=0)),
    "softmax_long_row": ((1, 1500), lambda n, x: n.softmax(x)),
    "dropout_identity": ((2, 5, 4, 4), lambda n, x: n.relu(n._emit("identity", [n.dropout(x, 0.3)], {}, "id"))),
    "flatten_transposes": ((2, 3, 4, 5), lambda n, x: n.flatten(x)),
    "flatten_is_view": ((2, 3, 1, 1), lambda n, x: n.relu(n.flatten(x))),
    "flatten_spatial": ((2, 3, 4, 5), lambda n, x: n.flatten(x, start_dim=2)),
    "linear": ((3, 40), lambda n, x: n.linear(x, 70)),
    "linear_after_flatten": ((2, 4, 3, 3), lambda n, x: n.linear(n.flatten(n.relu(x)), 10)),
}


@pytest.mark.parametrize("name", POOLS)
def test_pooling(name: str) -> None:
    shape, build = POOLS[name]
    check(one_op(shape, build))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_norm_and_shape_ops(name: str) -> None:
    shape, build = ELEMENTWISE[name]
    net = one_op(shape, build)
    if name == "batch_norm":
        net.randomize_batch_norm(seed=1)
    for key, value in list(net.graph.params.items()):
        if key.startswith("ss.") or key.endswith("bias") and name.startswith("bias_add"):
            net.graph.params[key] = np.random.default_rng(7).normal(size=value.shape).astype(np.float32)
    check(net)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["batch_norm", "softmax_spatial", "lrn", "linear"])
def test_half_precision_ops(dtype: str, name: str) -> None:
    shape, build = ELEMENTWISE[name]
    net = one_op(shape, build)
    if name == "batch_norm":
        net.randomize_batch_norm(seed=1)
    check(net, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_pool(dtype: str) -> None:
    shape, build = POOLS["avg2d_pad_excluded_ceil"]
    check(one_op(shape, build), dtype)


def _concat_net(shape: tuple[int, ...], axis: int) -> Network:
    net = Network("cat", seed=6)
    x = net.input(shape)
    a = net.relu(x)
    b = net.sigmoid(x)
    inner = net.concat([a, b], axis=axis, name="inner")
    c = net.tanh(x)
    outer = net.concat([inner, c, a], axis=axis, name="outer")  # nested, and `a` a second time
    net.output(net.relu(outer))
    return net


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), 3), ((3, 7), 1),
                                        ((1, 2, 3, 4, 2), 4)])
def test_concat(shape: tuple[int, ...], axis: int) -> None:
    check(_concat_net(shape, axis))


def test_channel_concat_writes_in_place() -> None:
    """Producers write into their slice of the concat output. `a` (relu) feeds both concats: it is placed
    in the outer one (planned first) and the inner concat copies it."""
    model = compile_triton(_concat_net((2, 3, 4, 5), 1))
    copies = [launch for launch in model.launches if launch.name == "strided_copy_kernel"]
    assert [launch.node for launch in copies] == ["inner"]
    plan = model.variants[((2, 3, 4, 5),)].plan
    assert plan.slices == {"inner": ("outer", 0), "sigmoid": ("inner", 3), "tanh": ("outer", 6),
                           "relu": ("outer", 9)}


def test_worked_example_max_pool() -> None:
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], np.float32).reshape(1, 1, 4, 4)
    [out] = compile_triton(one_op((1, 1, 4, 4), lambda n, v: n.max_pool2d(v, 2, stride=2))).run(x)
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [3, 4]])


def test_worked_example_softmax() -> None:
    scores = np.array([[3.2, 5.1, -1.7]], np.float32)
    [out] = compile_triton(one_op((1, 3), lambda n, v: n.softmax(v))).run(scores)
    np.testing.assert_allclose(out[0], [0.13, 0.87, 0.00], atol=0.005)
    assert abs(float(out.sum()) - 1.0) < 1e-6


def test_softmax_of_large_scores_stays_finite() -> None:
    scores = np.array([[1000.0, 999.0, -1000.0, 0.0]], np.float32)
    [out] = compile_triton(one_op((1, 4), lambda n, v: n.softmax(v))).run(scores)
    e = np.exp(np.array([0.0, -1.0]))
    np.testing.assert_allclose(out[0], [e[0] / e.sum(), e[1] / e.sum(), 0.0, 0.0], rtol=1e-6)


def test_pool_and_conv_chain_with_all_layer_kinds(rng: Any) -> None:
    """A small LeNet-like stack: conv, pool, LRN, flatten (NCHW order), linear, softmax."""
    net = Network("mini", seed=8)
    x = net.input((2, 3, 12, 12))
    y = net.relu(net.conv2d(x, 8, 5, padding=2))
    y = net.lrn(net.max_pool2d(y, 2))
    y = net.avg_pool2d(net.conv2d(y, 12, 3), 2, ceil_mode=True)
    y = net.softmax(net.linear(net.flatten(y), 10))
    net.output(y)
    check(net)
