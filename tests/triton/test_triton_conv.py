"""Every conv algorithm of the Triton backend (CPU interpreter) against the NumPy backend in float64, and
against the worked examples of REFERENCE.md."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from triton_check import check, compile_triton, set_algo

from convc.dsl import Network
from convc.errors import BackendError

# GPU-sized blocks, so these small shapes still run several programs and K steps.
pytestmark = pytest.mark.usefixtures("small_blocks")

# (input shape, conv keyword arguments): stride, asymmetric padding, dilation, groups, 1D and 3D.
GEOMETRIES: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {
    "3x3": ((1, 8, 9, 10), dict(out_channels=16, kernel=3, padding=1)),
    "strided_asym_dilated": ((2, 6, 10, 9), dict(out_channels=8, kernel=(3, 2), stride=2,
                                                 padding=((0, 1), (2, 1)), dilation=(2, 1))),
    "grouped": ((1, 16, 7, 7), dict(out_channels=8, kernel=3, padding=1, groups=2)),
    "pointwise_multiblock": ((2, 72, 6, 6), dict(out_channels=80, kernel=1)),
    "conv1d": ((2, 8, 12), dict(out_channels=16, kernel=5, stride=2, padding=((2, 1),))),
    "conv3d": ((1, 4, 5, 6, 6), dict(out_channels=8, kernel=3, stride=(1, 2, 2), padding=1)),
}
DIRECT_GEOMETRIES: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {
    "depthwise": ((1, 8, 7, 7), dict(out_channels=8, kernel=3, stride=2, padding=1, groups=8)),
    "rgb_5x5": ((1, 3, 9, 9), dict(out_channels=16, kernel=5, stride=2, padding=2)),
    "grouped_dilated": ((1, 6, 8, 8), dict(out_channels=4, kernel=3, padding=((2, 1), (0, 2)), dilation=2,
                                           groups=2)),
    "conv1d": GEOMETRIES["conv1d"],
    "conv3d": GEOMETRIES["conv3d"],
}


def conv_net(shape: tuple[int, ...], kw: dict[str, Any], algo: str | None, bias: bool = True) -> Network:
    net = Network("conv", seed=1)
    x = net.input(shape)
    kw = dict(kw)
    out = kw.pop("out_channels")
    kernel = kw.pop("kernel")
    y = net.conv(x, out, kernel, bias=bias, ndim=len(shape) - 2, **kw)
    set_algo(net, y, algo)
    net.output(y)
    return net


@pytest.mark.parametrize("case", GEOMETRIES)
def test_implicit_gemm_geometries(case: str) -> None:
    shape, kw = GEOMETRIES[case]
    check(conv_net(shape, kw, "implicit_gemm"), "float32")


@pytest.mark.parametrize("case", DIRECT_GEOMETRIES)
def test_direct_geometries(case: str) -> None:
    shape, kw = DIRECT_GEOMETRIES[case]
    check(conv_net(shape, kw, "direct"), "float32")


@pytest.mark.parametrize("case", ["3x3", "strided_asym_dilated", "grouped", "conv1d", "conv3d"])
def test_im2col_geometries(case: str) -> None:
    shape, kw = GEOMETRIES[case]
    check(conv_net(shape, kw, "im2col"), "float32")


@pytest.mark.parametrize("algo", ["winograd_2x2", "winograd_4x4"])
@pytest.mark.parametrize("padding", [1, 0, ((0, 2), (1, 0))])
def test_winograd(algo: str, padding: Any) -> None:
    # 9x11 is no multiple of either tile: partial tiles at the bottom and right edges.
    check(conv_net((2, 8, 9, 11), dict(out_channels=16, kernel=3, padding=padding), algo), "float32", algo)


@pytest.mark.parametrize("dtype,algo,case", [
    ("float16", "implicit_gemm", "strided_asym_dilated"),
    ("bfloat16", "implicit_gemm", "grouped"),
    ("float16", "im2col", "conv1d"),
    ("bfloat16", "im2col", "3x3"),
    ("float16", "winograd_2x2", "3x3"),
    ("bfloat16", "winograd_2x2", "3x3"),
    ("float16", "winograd_4x4", "3x3"),
    ("bfloat16", "winograd_4x4", "3x3"),
])
def test_half_precision(dtype: str, algo: str, case: str) -> None:
    shape, kw = GEOMETRIES[case]
    check(conv_net(shape, kw, algo), dtype, algo if algo.startswith("winograd") else None)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_direct_half_precision(dtype: str) -> None:
    shape, kw = DIRECT_GEOMETRIES["depthwise"]
    check(conv_net(shape, kw, "direct"), dtype)


def test_default_algorithm_choice_runs_every_layer_kind() -> None:
    """algo=None: depthwise for groups == C, implicit GEMM for the rest (a 3-channel input gathers K flat; a
    1x1 stride-1 conv is the plain GEMM on its input)."""
    net = Network("mixed", seed=2)
    x = net.input((1, 3, 8, 8))
    y = net.conv2d(x, 16, 3, padding=1)
    y = net.conv2d(y, 16, 3, padding=1, groups=16)
    y = net.conv2d(y, 24, 1)
    net.output(y)
    model = compile_triton(net)
    kernels = [launch.name for launch in model.launches]
    assert kernels == ["conv_implicit_gemm_kernel", "conv_depthwise_kernel", "gemm_kernel"]
    assert model.launches[0].meta["GATHER_K"]
    check(net)


def _single_channel(x: np.ndarray, k: np.ndarray, algo: str, **kw: Any) -> np.ndarray:
    net = Network("example")
    inp = net.input((1, 1) + x.shape)
    y = net.conv2d(inp, 1, k.shape, bias=False, **kw)
    set_algo(net, y, algo)
    net.output(y)
    net.graph.params[f"{y.name}.weight"] = k.reshape(1, 1, *k.shape).astype(np.float32)
    [out] = compile_triton(net).run(x.reshape((1, 1) + x.shape).astype(np.float32))
    return out[0, 0]


ALGOS_2X2_KERNEL = ["implicit_gemm", "direct", "im2col"]


@pytest.mark.parametrize("algo", ALGOS_2X2_KERNEL)
def test_worked_example_padding_and_stride(algo: str) -> None:
    x = np.arange(9, dtype=np.float64).reshape(3, 3)
    k = np.array([[0, 1], [2, 3]], np.float64)
    padded = _single_channel(x, k, algo, padding=1)
    np.testing.assert_allclose(padded, [[0, 3, 8, 4], [9, 19, 25, 10], [21, 37, 43, 16], [6, 7, 8, 0]])
    strided = _single_channel(x, k, algo, padding=1, stride=(3, 2))
    np.testing.assert_allclose(strided, [[0, 8], [6, 8]])


@pytest.mark.parametrize("algo", ALGOS_2X2_KERNEL + ["winograd_2x2", "winograd_4x4"])
def test_worked_examples_3x3(algo: str) -> None:
    x = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], np.float64)
    k = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], np.float64)
    np.testing.assert_allclose(_single_channel(x, k, algo), [[122, 148], [126, 134]], rtol=1e-5)
    edges = np.zeros((8, 8))
    edges[:, :4] = 10
    detector = np.array([[1, 0, -1]] * 3, np.float64)
    np.testing.assert_allclose(_single_channel(edges, detector, algo), [[0, 0, 30, 30, 0, 0]] * 6, atol=1e-4)


@pytest.mark.parametrize("attrs,fragment", [
    (dict(kernel=5, padding=2), "kernel (5, 5)"),
    (dict(kernel=3, stride=2, padding=1), "stride (2, 2)"),
    (dict(kernel=3, padding=1, groups=2), "groups=2"),
])
def test_winograd_that_does_not_apply_names_the_node(attrs: dict[str, Any], fragment: str) -> None:
    net = conv_net((1, 4, 8, 8), dict(out_channels=4, **attrs), "winograd_4x4")
    with pytest.raises(BackendError, match=r"node 'conv2d'.*does not apply.*" + fragment.replace("(", r"\(")
                       .replace(")", r"\)")):
        compile_triton(net)


def test_unknown_algo_lists_the_choices() -> None:
    net = conv_net((1, 4, 8, 8), dict(out_channels=4, kernel=3), "fft")
    with pytest.raises(BackendError, match=r"node 'conv2d'.*'fft'.*implicit_gemm"):
        compile_triton(net)
