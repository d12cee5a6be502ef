"""The ops of mobile and modern CNNs on the Triton backend (CPU interpreter) against the NumPy backend in
float64: activations standalone and fused into conv epilogues, the broadcasting multiply, layer norm,
channel shuffle, slices and adaptive average pooling."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from triton_check import check, compile_triton

import convc
from convc.dsl import Network, Value
from convc.errors import BackendError

pytestmark = pytest.mark.usefixtures("small_blocks")

Builder = Callable[[Network, Value], Value]

ACTIVATIONS: dict[str, Builder] = {
    "relu6": lambda n, x: n.relu6(x),
    "hardtanh": lambda n, x: n.hardtanh(x, -0.5, 0.25),
    "hardswish": lambda n, x: n.hardswish(x),
    "hardsigmoid": lambda n, x: n.hardsigmoid(x),
    "silu": lambda n, x: n.silu(x),
    "gelu": lambda n, x: n.gelu(x),
    "gelu_tanh": lambda n, x: n.gelu(x, approximate="tanh"),
}


def one_op(shape: tuple[int, ...], build: Builder, seed: int = 5) -> Network:
    net = Network("op", seed=seed)
    net.output(build(net, net.input(shape)))
    return net


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation(kind: str) -> None:
    x = np.random.default_rng(0).normal(0, 4, (2, 5, 4, 3)).astype(np.float32)
    x[0, 0, 0, :3] = (-3.0, 3.0, 0.0)
    check(one_op(x.shape, ACTIVATIONS[kind]), inputs=[x])


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_fused_into_conv(kind: str) -> None:
    net = Network("fused", seed=2)
    x = net.input((1, 4, 6, 5))
    net.output(ACTIVATIONS[kind](net, net.relu(net.conv2d(x, 6, 3, padding=1))))
    model = convc.compile(net, backend="triton", device="cpu", opt_level=2)
    conv = model.graph.nodes("conv2d")[0]
    assert len(conv.attrs["epilogue"]) == 2 and len(model.graph.nodes()) == len(model.graph.params) + 2
    xs = np.random.default_rng(1).normal(size=(1, 4, 6, 5)).astype(np.float32)
    check(net, inputs=[xs])
    ref = convc.compile(net, backend="numpy", dtype="float64").run(xs)[0]
    assert convc.numerics.rel_err(model.run(xs)[0], ref) <= convc.numerics.budget("float32")


def test_activations_keep_nan() -> None:
    x = np.array([np.nan, -np.inf, np.inf, -1.0], np.float32).reshape(1, 4, 1, 1)
    for kind, build in ACTIVATIONS.items():
        got = compile_triton(one_op(x.shape, build)).run(x)[0]
        assert np.isnan(got[0, 0, 0, 0]), kind
        assert np.isfinite(got[0, 3]).all(), kind


def test_clip_twice_exceeds_the_epilogue_steps_with_a_clear_error() -> None:
    net = Network("long")
    y = net.conv2d(net.input((1, 2, 3, 3)), 2, 1)
    graph = net.graph
    node = graph.node(y.name)
    steps = (("clip", 0.0, 6.0), ("clip", 0.0, 1.0), ("relu",))
    graph.replace_node(node.replace(attrs={**node.attrs, "epilogue": steps}))
    net.output(y)
    with pytest.raises(BackendError, match="needs 5 step codes"):
        compile_triton(net).run(np.zeros((1, 2, 3, 3), np.float32))


@pytest.mark.parametrize("scale_shape", [(2, 6, 1, 1), (2, 6, 5, 4), (1, 6, 1, 1), (2, 1, 5, 4), (1, 1, 1, 1)])
def test_mul_broadcasts(scale_shape: tuple[int, ...]) -> None:
    net = Network("mul")
    x = net.input((2, 6, 5, 4))
    s = net.input(scale_shape, name="s")
    net.output(net.mul(s, x))
    check(net)


def test_mul_of_an_unsupported_broadcast_names_the_node() -> None:
    net = Network("mul")
    net.output(net.mul(net.input((2, 6, 5, 4)), net.input((1, 6, 5, 4), name="s"), name="scale"))
    with pytest.raises(BackendError, match="node 'scale'"):
        compile_triton(net)


def test_squeeze_excitation_block() -> None:
    net = Network("se", seed=4)
    x = net.input((2, 8, 5, 5))
    y = net.silu(net.conv2d(x, 8, 3, padding=1, groups=8))
    s = net.hardsigmoid(net.conv2d(net.relu(net.conv2d(net.global_avg_pool(y), 4, 1)), 8, 1))
    net.output(net.conv2d(net.mul(y, s), 6, 1))
    check(net)


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (3, 40), (1, 70, 2, 2)])
def test_layer_norm(shape: tuple[int, ...]) -> None:
    net = Network("ln", seed=1)
    y = net.layer_norm(net.input(shape), eps=1e-6, name="norm")
    net.output(y)
    rng = np.random.default_rng(3)
    net.load_state_dict({"norm.weight": rng.uniform(0.5, 1.5, shape[1]), "norm.bias": rng.normal(0, 1, shape[1])})
    check(net, inputs=[rng.normal(3.0, 2.0, shape).astype(np.float32)])


def test_channel_scale() -> None:
    net = Network("scale", seed=1)
    net.output(net.channel_scale(net.input((2, 5, 3, 3)), name="gamma"))
    net.load_state_dict({"gamma.weight": np.linspace(-2.0, 3.0, 5)})
    check(net)


@pytest.mark.parametrize("groups", [2, 3])
def test_channel_shuffle_and_slices(groups: int) -> None:
    net = Network("shuffle", seed=1)
    x = net.input((2, 12, 3, 2))
    a, b = net.chunk(net.conv2d(x, 12, 1), 2)
    y = net.channel_shuffle(net.concat([net.slice(x, 3, 9), b, a]), groups)
    net.output(y, net.slice(y, 1, 3, axis=3), net.slice(net.flatten(y), 5, 30))
    check(net)


@pytest.mark.parametrize("shape, size", [((2, 3, 7, 5), (3, 2)), ((1, 4, 1, 1), (3, 3)), ((1, 2, 9), (4,)),
                                         ((1, 2, 3, 5, 4), (2, 3, 2)), ((2, 3, 6, 6), (1, 1))])
def test_adaptive_avg_pool(shape: tuple[int, ...], size: tuple[int, ...]) -> None:
    check(one_op(shape, lambda n, x: n.adaptive_avg_pool(x, size)))
