"""The ops of mobile and modern CNNs (dsl_layers.py): shapes and errors as written, values against
torch in float64 on the NumPy and torch backends, within the per-op budgets, and their epilogue fusion."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convc
from convc.errors import DefinitionError
from convc.numerics import budget, rel_err

ACTIVATIONS = {
    "hardswish": (lambda net, x: net.hardswish(x), F.hardswish),
    "hardsigmoid": (lambda net, x: net.hardsigmoid(x), F.hardsigmoid),
    "silu": (lambda net, x: net.silu(x), F.silu),
    "gelu": (lambda net, x: net.gelu(x), F.gelu),
    "gelu_tanh": (lambda net, x: net.gelu(x, approximate="tanh"), lambda t: F.gelu(t, approximate="tanh")),
    "relu6": (lambda net, x: net.relu6(x), F.relu6),
    "hardtanh": (lambda net, x: net.hardtanh(x, -0.5, 2.0), lambda t: F.hardtanh(t, -0.5, 2.0)),
}


def run(net: convc.Network, *xs: np.ndarray, backend: str = "numpy", dtype: str = "float64",
        opt_level: int = 0) -> np.ndarray:
    return convc.compile(net, backend=backend, dtype=dtype, opt_level=opt_level).run(*xs)[0]


def one_op(shape: tuple[int, ...], build) -> convc.Network:
    net = convc.Network("op")
    net.output(build(net, net.input(shape, dtype="float64")))
    return net


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.floats(-12, 12, allow_nan=False), min_size=24, max_size=24))
def test_activation_matches_torch(kind: str, backend: str, values: list[float]) -> None:
    build, reference = ACTIVATIONS[kind]
    x = np.array(values).reshape(1, 2, 3, 4)
    x[0, 0, 0, :3] = (-3.0, 3.0, 0.0)  # the kinks of the hard activations
    expected = reference(torch.from_numpy(x)).numpy()
    for dtype in ("float64", "float32"):
        got = run(one_op(x.shape, build), x, backend=backend, dtype=dtype)
        assert rel_err(got, expected) <= budget(dtype), (dtype, rel_err(got, expected))


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_propagates_nan_and_saturates_at_inf(kind: str) -> None:
    build, reference = ACTIVATIONS[kind]
    x = np.array([np.nan, np.inf, -np.inf, 1.0]).reshape(1, 4, 1, 1)
    expected = reference(torch.from_numpy(x)).numpy()
    got = run(one_op(x.shape, build), x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(got[finite], expected[finite])


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation_fuses_into_the_conv_epilogue(kind: str) -> None:
    build, _ = ACTIVATIONS[kind]
    net = convc.Network("fused", seed=1)
    x = net.input((1, 3, 6, 6), dtype="float64")
    net.output(build(net, net.conv2d(x, 4, 3, padding=1)))
    model = convc.compile(net, backend="numpy", dtype="float64", opt_level=2)
    ops = [n.op for n in model.graph.nodes() if n.op not in ("input", "param")]
    assert ops == ["conv2d"] and len(model.graph.nodes("conv2d")[0].attrs["epilogue"]) == 1
    xs = np.random.default_rng(0).standard_normal((1, 3, 6, 6))
    assert rel_err(model.run(xs)[0], run(net, xs)) <= budget("float64")
    torch_fused = convc.compile(net, backend="torch", dtype="float64", opt_level=2).run(xs)[0]
    assert rel_err(torch_fused, run(net, xs)) <= budget("float64")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_mul_broadcasts_a_squeeze_excitation_scale(backend: str) -> None:
    net = convc.Network("se")
    x = net.input((2, 6, 5, 4), dtype="float64")
    s = net.input((2, 6, 1, 1), dtype="float64", name="s")
    net.output(net.mul(s, x))  # the broadcast operand may come first
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6, 5, 4)), rng.standard_normal((2, 6, 1, 1))
    assert net.graph.node("mul").type.shape == (2, 6, 5, 4)
    np.testing.assert_allclose(run(net, a, b, backend=backend), a * b, rtol=1e-15)


def test_mul_rejects_operands_that_do_not_broadcast() -> None:
    net = convc.Network("bad")
    x = net.input((1, 8, 4, 4))
    with pytest.raises(DefinitionError, match=r"mul 'se': .*axis 1: 8 vs 4"):
        net.mul(x, net.input((1, 4, 1, 1), name="s"), name="se")
    with pytest.raises(DefinitionError, match="would both grow"):
        net.mul(net.input((1, 8, 1, 4), name="a"), net.input((1, 8, 4, 1), name="b"))
    with pytest.raises(DefinitionError, match="different ranks"):
        net.mul(x, net.input((8, 4, 4), name="c"))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@settings(max_examples=10, deadline=None)
@given(c=st.integers(2, 9), spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2),
       eps=st.sampled_from([1e-6, 1e-5, 0.1]))
def test_layer_norm_over_channels_matches_torch(backend: str, c: int, spatial: list[int], eps: float) -> None:
    shape = (2, c, *spatial)
    net = convc.Network("ln", seed=3)
    y = net.layer_norm(net.input(shape, dtype="float64"), eps=eps, name="norm")
    net.output(y)
    rng = np.random.default_rng(c)
    # DSL parameters are float32: draw values it holds exactly
    w, b = (v.astype(np.float32).astype(np.float64)
            for v in (rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c)))
    net.load_state_dict({"norm.weight": w, "norm.bias": b})
    x = rng.normal(2.0, 3.0, shape)
    t = torch.from_numpy(x).movedim(1, -1)
    expected = F.layer_norm(t, (c,), torch.from_numpy(w), torch.from_numpy(b), eps).movedim(-1, 1).numpy()
    for dtype in ("float64", "float32"):
        assert rel_err(run(net, x, backend=backend, dtype=dtype), expected) <= budget(dtype)


def test_layer_norm_of_one_channel_is_its_bias() -> None:
    """Zero variance: exactly the bias (torch's float64 result is off by its rounding of x - mean)."""
    net = convc.Network("ln1")
    net.output(net.layer_norm(net.input((2, 1, 3), dtype="float64"), name="norm"))
    net.load_state_dict({"norm.weight": np.array([2.0]), "norm.bias": np.array([0.25])})
    np.testing.assert_array_equal(run(net, np.random.default_rng(0).normal(5, 3, (2, 1, 3))), 0.25)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_channel_shuffle_matches_torch(backend: str, groups: int) -> None:
    x = np.random.default_rng(groups).standard_normal((2, 6, 3, 2))
    got = run(one_op(x.shape, lambda net, v: net.channel_shuffle(v, groups)), x, backend=backend)
    np.testing.assert_array_equal(got, F.channel_shuffle(torch.from_numpy(x), groups).numpy())


def test_channel_shuffle_needs_groups_that_divide_the_channels() -> None:
    net = convc.Network("bad")
    with pytest.raises(DefinitionError, match="channel_shuffle 'shuffle': groups=4 does not divide the 6"):
        net.channel_shuffle(net.input((1, 6, 2, 2)), 4, name="shuffle")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@given(size=st.integers(1, 11), chunks=st.integers(1, 5), axis=st.sampled_from([1, 2, -1]))
@settings(max_examples=20, deadline=None)
def test_chunk_and_split_cut_as_torch_does(backend: str, size: int, chunks: int, axis: int) -> None:
    shape = [1, 3, 4, 5]
    shape[axis] = size
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    net = convc.Network("cut")
    parts = net.chunk(net.input(tuple(shape), dtype="float64"), chunks, axis=axis)
    net.output(*parts)
    expected = [t.numpy() for t in torch.from_numpy(x).chunk(chunks, dim=axis)]
    got = convc.compile(net, backend=backend, dtype="float64").run(x)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_slice_errors_name_the_layer() -> None:
    net = convc.Network("bad")
    x = net.input((1, 6, 2, 2))
    with pytest.raises(DefinitionError, match=r"slice 'half': slice 4:4 is empty"):
        net.slice(x, 4, 4, name="half")
    with pytest.raises(DefinitionError, match="batch axis 0"):
        net.slice(x, 0, 1, axis=0)
    with pytest.raises(DefinitionError, match="sizes"):
        net.split(x, [2, 2])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 7), ow=st.integers(1, 7))
@settings(max_examples=25, deadline=None)
def test_adaptive_avg_pool_matches_torch_for_any_size(backend: str, h: int, w: int, oh: int, ow: int) -> None:
    x = np.random.default_rng(h * 10 + w).standard_normal((2, 3, h, w))
    got = run(one_op(x.shape, lambda net, v: net.adaptive_avg_pool(v, (oh, ow))), x, backend=backend)
    expected = F.adaptive_avg_pool2d(torch.from_numpy(x), (oh, ow)).numpy()
    assert rel_err(got, expected) <= budget("float64")


def test_adaptive_avg_pool_1d_and_3d() -> None:
    rng = np.random.default_rng(0)
    for shape, size, ref in (((1, 2, 7), (3,), F.adaptive_avg_pool1d), ((1, 2, 3, 5, 4), (2, 3, 6),
                                                                       F.adaptive_avg_pool3d)):
        x = rng.standard_normal(shape)
        got = run(one_op(shape, lambda net, v, s=size: net.adaptive_avg_pool(v, s)), x)
        assert rel_err(got, ref(torch.from_numpy(x), size).numpy()) <= budget("float64")


def test_definition_errors_of_the_activations() -> None:
    net = convc.Network("bad")
    x = net.input((1, 2, 2, 2))
    with pytest.raises(DefinitionError, match="clip 'c': min=2 must not exceed max=1"):
        net.clip(x, 2, 1, name="c")
    with pytest.raises(DefinitionError, match="gelu 'g': approximate='erf'"):
        net.gelu(x, approximate="erf", name="g")
    with pytest.raises(DefinitionError, match="adaptive_avg_pool 'p': output size"):
        net.adaptive_avg_pool(x, (0, 2), name="p")
    with pytest.raises(DefinitionError, match="layer_norm 'n': eps"):
        net.layer_norm(x, eps=0, name="n")
    assert net.activation(x, "clip", min=0.0, max=6.0).shape == (1, 2, 2, 2)


def test_schema_counts_the_multiplies_and_layer_norm_parameters() -> None:
    net = convc.Network("count")
    x = net.input((1, 4, 3, 3))
    net.output(net.mul(net.layer_norm(x), x))
    from convc.summary import summarize

    summary = summarize(net.graph)
    assert summary.layer("layer_norm").params == 8
    assert summary.layer("mul").macs == 36
