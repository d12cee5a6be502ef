"""NumPy backend convolutions against torch.nn.functional in float64: every algorithm over a grid of
1D/2D/3D configurations, Winograd tilings, fused epilogues, property tests and applicability errors."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convc
from convc.backend import LoweringContext
from convc.backends.numpy_ref import backend
from convc.errors import BackendError
from convc.ir import Graph
from convc.numerics import budget, rel_err

DTYPES = ("float32", "float64")
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_ACTIVATIONS = {
    "relu": lambda y: F.relu(y),
    "leaky_relu": lambda y, s: F.leaky_relu(y, s),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": lambda y, a: F.elu(y, a),
}


def conv_graph(ndim: int, in_shape: tuple[int, ...], out_channels: int, kernel: Any, stride: Any = 1,
               padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
               algo: str | None = None, epilogue: tuple = (), name: str = "conv") -> Graph:
    """One conv node (with `algo` and a fused `epilogue`); each ("add",) step gets a graph input."""
    net = convc.Network("conv_test", seed=ndim)
    x = net.input(in_shape)
    y = net.conv(x, out_channels, kernel, stride=stride, padding=padding, dilation=dilation,
                 groups=groups, bias=bias, name=name, ndim=ndim)
    residuals = [net.input(y.shape, name=f"residual{i}").name
                 for i, step in enumerate(epilogue) if step[0] == "add"]
    net.output(y)
    graph = net.graph
    node = graph[name]
    params = node.inputs[1:]
    graph.replace_node(node.replace(attrs={**node.attrs, "algo": algo, "epilogue": epilogue},
                                    inputs=(node.inputs[0], *residuals, *params)))
    graph.verify()
    return graph


def torch_conv(graph: Graph, inputs: list[np.ndarray], name: str = "conv") -> np.ndarray:
    """The oracle: torch.nn.functional in float64 on explicitly padded input, then the epilogue."""
    node = graph[name]
    a = node.attrs
    ndim = len(a["kernel"])
    x = torch.from_numpy(inputs[0].astype(np.float64))
    pads = [p for lo_hi in reversed(a["padding"]) for p in lo_hi]  # F.pad: last axis first
    w = torch.from_numpy(graph.param_of(node, "weight").astype(np.float64))
    b = graph.param_of(node, "bias")
    b = None if b is None else torch.from_numpy(b.astype(np.float64))
    y = TORCH_CONV[ndim](F.pad(x, pads), w, b, a["stride"], 0, a["dilation"], a["groups"])
    residuals = iter(inputs[1:])
    for step in a["epilogue"]:
        if step[0] == "add":
            y = y + torch.from_numpy(next(residuals).astype(np.float64))
        else:
            y = TORCH_ACTIVATIONS[step[0]](y, *step[1:])
    return y.numpy()


def check(graph: Graph, dtype: str, seed: int = 0, name: str = "conv") -> float:
    """Runs `graph` on the NumPy backend and returns its error against the torch oracle, asserting the
    budget of its dtype and algorithm. Inputs are float32-representable so both see the same values."""
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    out = backend.compile(graph, dtype=dtype).run(*inputs)[0]
    assert out.dtype == np.dtype(dtype)
    err = rel_err(out, torch_conv(graph, inputs, name))
    assert err <= budget(dtype, graph[name].attrs["algo"]), err
    return err


# (ndim, input shape, out channels, kernel, stride, padding, dilation, groups, bias)
GRID = [
    (1, (2, 3, 11), 4, 3, 1, 0, 1, 1, True),
    (1, (1, 4, 16), 6, 5, 2, ((2, 1),), 1, 2, False),
    (1, (2, 4, 10), 4, 3, 1, "same", 2, 4, True),
    (2, (2, 3, 8, 9), 5, 3, 1, 1, 1, 1, True),
    (2, (1, 4, 10, 7), 6, (3, 2), (2, 1), ((0, 2), (1, 0)), 1, 2, True),
    (2, (1, 6, 9, 9), 6, 3, 1, 2, 2, 6, True),
    (2, (2, 4, 8, 8), 8, 1, 2, 0, 1, 1, False),
    (2, (1, 3, 12, 12), 4, 4, 1, "same", 1, 1, True),
    (2, (1, 8, 7, 7), 4, 3, 2, "same", 1, 4, True),
    (2, (1, 2, 5, 5), 3, 5, 1, 0, 1, 1, True),
    (2, (2, 4, 6, 6), 4, 1, 1, 0, 1, 1, True),
    (2, (1, 3, 11, 11), 4, 7, 3, 3, 1, 1, True),
    (2, (1, 4, 9, 6), 2, 3, (1, 2), ((3, 0), (0, 2)), (2, 1), 2, True),
    (3, (1, 2, 5, 6, 4), 3, 3, 1, 1, 1, 1, True),
    (3, (2, 4, 6, 5, 5), 4, (3, 1, 2), (2, 1, 1), ((1, 0), (0, 0), (1, 1)), (1, 1, 2), 2, False),
    (3, (1, 4, 5, 5, 5), 4, 3, 1, "same", 1, 4, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["direct", "im2col", None])
@pytest.mark.parametrize("config", GRID, ids=[f"{c[0]}d-{i}" for i, c in enumerate(GRID)])
def test_conv_grid_matches_torch(config: tuple, algo: str | None, dtype: str) -> None:
    ndim, shape, out, k, s, p, d, g, b = config
    check(conv_graph(ndim, shape, out, k, s, p, d, g, b, algo=algo), dtype)


# Winograd: 2D 3x3 stride 1; sizes that are and are not multiples of the tile, 1x1 outputs, asymmetric pads.
WINOGRAD_GRID = [
    ((1, 3, 4, 4), 2, 1, True),
    ((2, 4, 9, 7), 3, ((1, 2), (0, 1)), True),
    ((1, 5, 6, 6), 4, 0, False),
    ((1, 2, 3, 3), 2, 0, True),
    ((1, 8, 13, 11), 5, "same", True),
    ((1, 1, 5, 17), 3, 1, False),
    ((2, 16, 10, 10), 8, 1, True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["winograd_2x2", "winograd_4x4"])
@pytest.mark.parametrize("config", WINOGRAD_GRID, ids=[str(c[0]) for c in WINOGRAD_GRID])
def test_winograd_matches_torch(config: tuple, algo: str, dtype: str) -> None:
    shape, out, pad, bias = config
    check(conv_graph(2, shape, out, 3, padding=pad, bias=bias, algo=algo), dtype)


def test_winograd_is_exact_in_float64_on_integers() -> None:
    """Integer data: F(2x2) and F(4x4) must reproduce the integer result to float64 rounding."""
    graph = conv_graph(2, (1, 2, 6, 6), 2, 3, padding=1, bias=False, algo="winograd_4x4")
    rng = np.random.default_rng(3)
    graph.params["conv.weight"] = rng.integers(-3, 4, (2, 2, 3, 3)).astype(np.float32)
    x = rng.integers(-5, 6, (1, 2, 6, 6)).astype(np.float64)
    expected = torch_conv(graph, [x])
    for algo in ("winograd_2x2", "winograd_4x4"):
        node = graph["conv"]
        graph.replace_node(node.replace(attrs={**node.attrs, "algo": algo}))
        out = backend.compile(graph, dtype="float64").run(x)[0]
        assert np.abs(out - expected).max() < 1e-12


EPILOGUES = [
    (("relu",),),
    (("leaky_relu", 0.1),),
    (("sigmoid",),),
    (("tanh",),),
    (("elu", 0.7),),
    (("add",),),
    (("add",), ("relu",)),
    (("add",), ("add",), ("relu",)),
    (("relu",), ("add",), ("elu", 1.0), ("add",), ("tanh",)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["direct", "im2col", "winograd_2x2", "winograd_4x4"])
@pytest.mark.parametrize("epilogue", EPILOGUES, ids=["-".join(s[0] for s in e) for e in EPILOGUES])
def test_fused_epilogue_matches_torch(epilogue: tuple, algo: str, dtype: str) -> None:
    check(conv_graph(2, (2, 3, 7, 6), 4, 3, padding=1, algo=algo, epilogue=epilogue), dtype)


@pytest.mark.parametrize("algo", ["direct", "im2col"])
@pytest.mark.parametrize("ndim", [1, 3])
def test_fused_epilogue_on_1d_and_3d(ndim: int, algo: str) -> None:
    shape = (2, 4, 9) if ndim == 1 else (1, 4, 4, 5, 3)
    epilogue = (("add",), ("leaky_relu", 0.2), ("add",))
    check(conv_graph(ndim, shape, 4, 3, stride=2, padding=1, groups=2, algo=algo, epilogue=epilogue),
          "float64")


def test_epilogue_leaves_residual_operands_untouched() -> None:
    graph = conv_graph(2, (1, 2, 5, 5), 2, 3, padding=1, epilogue=(("add",), ("relu",)))
    rng = np.random.default_rng(0)
    x, r = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((1, 2, 5, 5))
    r_before = r.copy()
    backend.compile(graph, dtype="float64")(x, r)
    np.testing.assert_array_equal(r, r_before)


def test_default_algorithm_is_im2col() -> None:
    graph = conv_graph(2, (1, 2, 5, 5), 2, 3)
    ctx = LoweringContext(graph, "float32")
    assert backend.lowering_of(graph["conv"], ctx) is backend.lowerings[("conv2d", "im2col")]


# ---------------------------------------------------------------------------- property tests
@st.composite
def conv_configs(draw: st.DrawFn) -> tuple:
    ndim = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(ndim))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    assume(all(d * (k - 1) + 1 <= s + lo + hi
               for d, k, s, (lo, hi) in zip(dilation, kernel, spatial, padding)))
    n = draw(st.integers(1, 2))
    return ndim, (n, c_in) + spatial, c_out, kernel, stride, padding, dilation, groups, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(config=conv_configs(), algo=st.sampled_from(["direct", "im2col"]), dtype=st.sampled_from(DTYPES))
def test_conv_property_matches_torch(config: tuple, algo: str, dtype: str) -> None:
    ndim, shape, out, k, s, p, d, g, b = config
    check(conv_graph(ndim, shape, out, k, s, p, d, g, b, algo=algo), dtype)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 4), k=st.integers(1, 4),
       pads=st.tuples(*[st.integers(0, 2)] * 4), algo=st.sampled_from(["winograd_2x2", "winograd_4x4"]),
       dtype=st.sampled_from(DTYPES))
def test_winograd_property_matches_torch(h: int, w: int, c: int, k: int, pads: tuple[int, ...], algo: str,
                                         dtype: str) -> None:
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    assume(h + pads[0] + pads[1] >= 3 and w + pads[2] + pads[3] >= 3)
    check(conv_graph(2, (1, c, h, w), k, 3, padding=padding, algo=algo), dtype)


# ---------------------------------------------------------------------------- applicability errors
@pytest.mark.parametrize("algo", ["winograd_2x2", "winograd_4x4"])
@pytest.mark.parametrize("conv, got", [
    (dict(kernel=1), "got kernel 1x1"),
    (dict(kernel=3, stride=2, padding=1), "got stride 2x2"),
    (dict(kernel=3, dilation=2, padding=2), "got dilation 2x2"),
    (dict(kernel=3, groups=2, padding=1), "got groups 2"),
    (dict(kernel=(3, 5), stride=(1, 2)), "got kernel 3x5, stride 1x2"),
])
def test_winograd_that_does_not_apply_names_the_node(algo: str, conv: dict, got: str) -> None:
    options = {key: value for key, value in conv.items() if key != "kernel"}
    graph = conv_graph(2, (1, 4, 9, 9), 4, conv["kernel"], algo=algo, name="layer1.0.conv1", **options)
    with pytest.raises(BackendError) as info:
        backend.compile(graph)
    msg = str(info.value)
    requirement = "needs a 3x3 kernel, stride 1, dilation 1, groups 1;"
    assert msg.startswith(f"node 'layer1.0.conv1': {algo} {requirement}")
    assert msg.endswith(got)


def test_winograd_on_conv1d_names_the_node_and_the_op() -> None:
    graph = conv_graph(1, (1, 2, 9), 2, 3, algo="winograd_2x2", name="text.conv3")
    with pytest.raises(BackendError, match=r"node 'text\.conv3': winograd_2x2 needs a conv2d .*got conv1d"):
        backend.compile(graph)


def test_unknown_algorithm_lists_the_known_ones() -> None:
    graph = conv_graph(2, (1, 2, 5, 5), 2, 3, algo="fft", name="features.0")
    with pytest.raises(BackendError, match=r"node 'features\.0'.*'fft'.*direct, im2col, winograd_2x2"):
        backend.compile(graph)
