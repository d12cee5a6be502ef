"""The worked examples of REFERENCE.md, written in the DSL, loaded with net.load_state_dict and run on
the NumPy backend with every conv algorithm that applies, in float32 and float64."""
from __future__ import annotations

import numpy as np
import pytest

import convc
from convc.backends.numpy_ref import backend
from convc.numerics import budget, rel_err

DTYPES = ("float32", "float64")
WINOGRAD = ("winograd_2x2", "winograd_4x4")


def algos_for(kernel: tuple[int, int], stride: tuple[int, int]) -> list[str]:
    """Winograd applies only to 3x3 kernels at stride 1 (and dilation 1, groups 1, as here)."""
    algos = ["direct", "im2col"]
    return algos + list(WINOGRAD) if kernel == (3, 3) and stride == (1, 1) else algos


def run_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int | tuple[int, int],
             padding: int, algo: str, dtype: str) -> np.ndarray:
    """x: (C, H, W); weight: (K, C, kh, kw). Returns the (K, Ho, Wo) output of the NumPy backend."""
    net = convc.Network("worked_example")
    inp = net.input((1,) + x.shape)
    net.output(net.conv2d(inp, weight.shape[0], weight.shape[2:], stride=stride, padding=padding,
                          bias=bias is not None, name="conv"))
    net.load_state_dict({"conv.weight": weight, **({"conv.bias": bias} if bias is not None else {})})
    node = net.graph["conv"]
    net.graph.replace_node(node.replace(attrs={**node.attrs, "algo": algo}))
    return backend.compile(net.graph, dtype=dtype).run(x[None].astype(np.float64))[0][0]


def single_channel_cases() -> list[tuple]:
    x3 = np.arange(9.0).reshape(3, 3)
    k2 = np.array([[0.0, 1.0], [2.0, 3.0]])
    edge_input = np.zeros((8, 8))
    edge_input[:, :4] = 10
    return [
        ("padding", x3, k2, 1, 1,
         [[0, 3, 8, 4], [9, 19, 25, 10], [21, 37, 43, 16], [6, 7, 8, 0]]),
        ("stride", x3, k2, (3, 2), 1, [[0, 8], [6, 8]]),
        ("conv as matmul", np.array([[4.0, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]]),
         np.array([[1.0, 4, 1], [1, 4, 3], [3, 3, 1]]), 1, 0, [[122, 148], [126, 134]]),
        ("edge detector", edge_input, np.tile([1.0, 0.0, -1.0], (3, 1)), 1, 0,
         [[0, 0, 30, 30, 0, 0]] * 6),
    ]


CASES = [(name, algo, dtype, case) for name, *case in single_channel_cases()
         for algo in algos_for(np.shape(case[1]), case[2] if isinstance(case[2], tuple) else (case[2],) * 2)
         for dtype in DTYPES]


@pytest.mark.parametrize("name, algo, dtype, case", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_single_channel_examples(name: str, algo: str, dtype: str, case: tuple) -> None:
    x, kernel, stride, padding, expected = case
    out = run_conv(x[None], kernel[None, None], None, stride, padding, algo, dtype)
    np.testing.assert_allclose(out[0], np.array(expected, np.float64), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", algos_for((3, 3), (1, 1)))
def test_mean_filter(algo: str, dtype: str) -> None:
    """200 at (2, 2) and 100 at (4, 3), averaged over 3x3 with padding 1: 200/9 ~ 22 on the 3x3
    neighbourhood of the first, 100/9 ~ 11 on that of the second, 300/9 ~ 33 where they overlap."""
    x = np.zeros((6, 6))
    x[2, 2], x[4, 3] = 200, 100
    out = run_conv(x[None], np.full((1, 1, 3, 3), 1 / 9), None, 1, 1, algo, dtype)
    rows, cols = np.indices((6, 6))
    near_200 = (abs(rows - 2) <= 1) & (abs(cols - 2) <= 1)
    near_100 = (abs(rows - 4) <= 1) & (abs(cols - 3) <= 1)
    expected = np.where(near_200 & near_100, 33, np.where(near_200, 22, np.where(near_100, 11, 0)))
    np.testing.assert_array_equal(np.round(out[0]), expected)
    stored_ninth = float(np.float32(1 / 9))  # the DSL keeps parameters in float32
    exact = (200 * near_200 + 100 * near_100) * stored_ninth
    assert rel_err(out[0], exact) <= budget(dtype, algo)


# The cs231n "Convolution Demo" draws a fresh random input (values 0..2) and filters (-1..1) on each
# page load (cs231n.github.io assets/conv-demo/index.html), so the instance behind the documented
# outputs is not recoverable. This input and these filters were derived (integer programming, within
# the demo's value ranges) so that the demo's layer -- pad 1, stride 2, b = (1, 0) -- yields exactly
# the documented outputs. Channel-first: X[c] is the demo's x[:,:,c], W[k][c] its wk[:,:,c].
CS231N_X = np.array([
    [[1, 1, 2, 2, 0], [0, 2, 2, 0, 0], [2, 1, 0, 2, 0], [1, 1, 1, 0, 0], [2, 2, 2, 1, 2]],
    [[0, 1, 2, 0, 0], [0, 1, 2, 0, 1], [1, 2, 0, 1, 0], [0, 2, 0, 0, 1], [1, 0, 2, 2, 2]],
    [[0, 2, 0, 1, 2], [0, 2, 0, 0, 2], [1, 1, 0, 0, 1], [1, 1, 2, 1, 1], [2, 2, 1, 0, 2]],
], np.float64)
CS231N_W = np.array([
    [[[1, 1, 1], [1, -1, 1], [1, 0, 1]], [[1, -1, 1], [-1, -1, 0], [-1, -1, -1]],
     [[1, 1, 1], [1, 0, 1], [1, 0, -1]]],
    [[[1, 0, 1], [-1, -1, 0], [0, 0, -1]], [[0, 1, 1], [1, -1, 0], [-1, 0, -1]],
     [[-1, 0, 1], [-1, -1, -1], [0, 1, -1]]],
], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", algos_for((3, 3), (2, 2)))
def test_cs231n_multi_channel_stride_2(algo: str, dtype: str) -> None:
    out = run_conv(CS231N_X, CS231N_W, np.array([1.0, 0.0]), 2, 1, algo, dtype)
    np.testing.assert_array_equal(out[0], [[2, 3, 3], [3, 7, 3], [8, 10, -3]])
    np.testing.assert_array_equal(out[1], [[-8, -8, -3], [-3, 1, 0], [-3, -8, -5]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_2x2_stride_2(dtype: str) -> None:
    net = convc.Network("max_pool_example")
    net.output(net.max_pool2d(net.input((1, 1, 4, 4)), 2, stride=2))
    x = np.array([[1.0, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]])
    out = backend.compile(net.graph, dtype=dtype).run(x[None, None])[0]
    np.testing.assert_array_equal(out[0, 0], [[6, 8], [3, 4]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_class_scores(dtype: str) -> None:
    net = convc.Network("softmax_example")
    net.output(net.softmax(net.input((1, 3))))
    out = backend.compile(net.graph, dtype=dtype).run(np.array([[3.2, 5.1, -1.7]]))[0]
    np.testing.assert_array_equal(np.round(out[0].astype(np.float64), 2), [0.13, 0.87, 0.00])
    assert abs(out.sum() - 1) < 1e-6
