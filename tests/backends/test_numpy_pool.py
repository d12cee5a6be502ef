"""NumPy backend pooling against torch.nn.functional in float64: max/avg 1D/2D/3D with padding,
ceil_mode (torch's rule) and count_include_pad, global pooling, and property tests."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convc
from convc.backends.numpy_ref import backend
from convc.numerics import budget, rel_err

DTYPES = ("float32", "float64")
TORCH_POOL = {
    ("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("max", 3): F.max_pool3d,
    ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d, ("avg", 3): F.avg_pool3d,
}


def run_pool(kind: str, shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
             padding: tuple[int, ...], ceil_mode: bool, count_include_pad: bool, dtype: str,
             seed: int = 0) -> None:
    """Builds one pooling node, runs it on the NumPy backend and checks it against torch."""
    ndim = len(kernel)
    net = convc.Network("pool_test")
    x = net.input(shape)
    extra = {"count_include_pad": count_include_pad} if kind == "avg" else {}
    net.output(net.pool(kind, x, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, name="pool",
                        ndim=ndim, **extra))
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    out = backend.compile(net.graph, dtype=dtype).run(data)[0]
    t_extra = {"count_include_pad": count_include_pad} if kind == "avg" else {}
    expected = TORCH_POOL[kind, ndim](torch.from_numpy(data.astype(np.float64)), kernel, stride, padding,
                                      ceil_mode=ceil_mode, **t_extra).numpy()
    assert out.dtype == np.dtype(dtype)
    assert rel_err(out, expected) <= budget(dtype)


# (input shape, kernel, stride, padding, ceil_mode)
GRID = [
    ((2, 3, 10), (3,), (2,), (1,), False),
    ((1, 2, 10), (3,), (2,), (1,), True),
    ((1, 2, 7), (2,), (3,), (0,), True),
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False),
    ((1, 4, 9, 7), (3, 3), (2, 2), (1, 1), False),
    ((1, 4, 9, 7), (3, 3), (2, 2), (1, 1), True),
    ((1, 2, 6, 6), (3, 3), (2, 2), (0, 0), True),
    ((1, 2, 5, 5), (2, 2), (2, 2), (1, 1), True),
    ((1, 3, 10, 11), (3, 2), (2, 3), (1, 0), True),
    ((1, 2, 13, 13), (3, 3), (2, 2), (0, 0), True),
    ((1, 2, 6, 7, 5), (2, 2, 2), (2, 2, 2), (0, 0, 0), False),
    ((1, 2, 5, 6, 7), (3, 3, 2), (2, 1, 2), (1, 1, 1), True),
    # size == out * stride: every tap one call over all rows, border windows redone (GoogLeNet, ResNet)
    ((2, 3, 7, 7), (3, 3), (1, 1), (1, 1), True),
    ((1, 2, 8, 8), (3, 3), (2, 2), (0, 0), True),
    ((2, 2, 8, 6), (3, 3), (2, 2), (1, 1), False),
    ((1, 2, 9, 12), (5, 4), (1, 3), (2, 1), False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, count_include_pad", [("max", True), ("avg", True), ("avg", False)])
@pytest.mark.parametrize("config", GRID, ids=[f"{len(c[1])}d-{i}" for i, c in enumerate(GRID)])
def test_pool_grid_matches_torch(config: tuple, kind: str, count_include_pad: bool, dtype: str) -> None:
    shape, kernel, stride, padding, ceil_mode = config
    run_pool(kind, shape, kernel, stride, padding, ceil_mode, count_include_pad, dtype)


def test_avg_pool_divisor_with_ceil_mode_clipping() -> None:
    """Worked by hand: 1D input [1, 2, 3, 4, 5], kernel 3, stride 2, padding 1, ceil_mode.
    Windows over the padded [0, 1, 2, 3, 4, 5, 0] start at -1, 1, 3 (the last would start at 5 =
    size + pad, outside, so it is dropped): sums 3, 9, 9; torch divides the last window (3..5, clipped
    to the padded end 6) by 3 with padding counted and by 2 without."""
    for include, expected in ((True, [1.0, 3.0, 3.0]), (False, [1.5, 3.0, 4.5])):
        net = convc.Network("pool_by_hand")
        x = net.input((1, 1, 5))
        net.output(net.avg_pool1d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=include))
        data = np.arange(1, 6, dtype=np.float64).reshape(1, 1, 5)
        out = backend.compile(net.graph, dtype="float64").run(data)[0]
        np.testing.assert_allclose(out.ravel(), expected, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["global_avg_pool", "global_max_pool"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 5, 4), (1, 2, 3, 4, 5)])
def test_global_pool_matches_torch(kind: str, shape: tuple[int, ...], dtype: str) -> None:
    net = convc.Network("global_pool")
    x = net.input(shape)
    net.output(getattr(net, kind)(x))
    data = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    out = backend.compile(net.graph, dtype=dtype).run(data)[0]
    t = torch.from_numpy(data.astype(np.float64))
    dims = tuple(range(2, len(shape)))
    expected = t.mean(dim=dims, keepdim=True) if kind == "global_avg_pool" else t.amax(dim=dims, keepdim=True)
    assert out.shape == shape[:2] + (1,) * (len(shape) - 2)
    assert rel_err(out, expected.numpy()) <= budget(dtype)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 40), h=st.integers(1, 30), w=st.integers(1, 30),
       dtype=st.sampled_from(DTYPES), special=st.sampled_from(["none", "nan", "inf", "both infs"]),
       seed=st.integers(0, 100))
def test_global_avg_pool_as_a_gemv_matches_torch(n: int, c: int, h: int, w: int, dtype: str, special: str,
                                                 seed: int) -> None:
    """Any map size (1x1 included), one plane's sum as a row of a matrix-vector product: torch float64's
    means within the budget, and NaN / inf only in the planes that hold them (inf and -inf: NaN)."""
    shape = (n, c, h, w)
    data = (10 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    if special in ("nan", "inf", "both infs"):
        data[0, 0, 0, 0] = np.nan if special == "nan" else np.inf
    if special == "both infs":
        data[0, 0, -1, -1], data[-1, -1, 0, 0] = -np.inf, -np.inf
    net = convc.Network("gap")
    net.output(net.global_avg_pool(net.input(shape)))
    with np.errstate(invalid="ignore"):
        out = backend.compile(net.graph, dtype=dtype).run(data)[0]
        expected = torch.from_numpy(data.astype(np.float64)).mean(dim=(2, 3), keepdim=True).numpy()
    assert out.dtype == np.dtype(dtype) and out.shape == (n, c, 1, 1)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(out[np.isinf(expected)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    assert rel_err(out[finite], expected[finite]) <= budget(dtype)


@pytest.mark.parametrize("stride, padding, ceil_mode", [(1, 1, False), (2, 0, True), (2, 1, False)])
def test_max_pool_rows_do_not_leak_into_each_other(stride: int, padding: int, ceil_mode: bool) -> None:
    """The all-rows-at-once taps read across row ends before the border windows are redone: a NaN, an inf
    and a large value at the ends of rows (and channels) must reach exactly the windows torch gives them."""
    shape = (2, 3, 8, 8)
    data = np.random.default_rng(5).standard_normal(shape)
    data[0, 0, 2, -1], data[0, 1, 3, 0], data[1, 2, -1, 4] = np.nan, np.inf, 100.0
    data[1, 0, 0, -1] = -np.inf
    net = convc.Network("pool_rows")
    x = net.input(shape)
    net.output(net.max_pool2d(x, 3, stride=stride, padding=padding, ceil_mode=ceil_mode))
    expected = F.max_pool2d(torch.from_numpy(data), 3, stride, padding, ceil_mode=ceil_mode).numpy()
    for dtype in DTYPES:
        out = backend.compile(net.graph, dtype=dtype).run(data.astype(dtype))[0]
        np.testing.assert_array_equal(out, expected.astype(dtype))


@st.composite
def pool_configs(draw: st.DrawFn) -> tuple:
    ndim = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    spatial = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    assume(all(k <= s + 2 * p for k, s, p in zip(kernel, spatial, padding)))
    ceil_mode = draw(st.booleans())
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + spatial
    return shape, kernel, stride, padding, ceil_mode


@settings(max_examples=40, deadline=None)
@given(config=pool_configs(), kind=st.sampled_from(["max", "avg"]), count_include_pad=st.booleans(),
       dtype=st.sampled_from(DTYPES))
def test_pool_property_matches_torch(config: tuple, kind: str, count_include_pad: bool, dtype: str) -> None:
    shape, kernel, stride, padding, ceil_mode = config
    # torch's avg_pool3d (only it) refuses a kernel larger than the unpadded input.
    assume(not (kind == "avg" and len(kernel) == 3 and any(k > s for k, s in zip(kernel, shape[2:]))))
    run_pool(kind, shape, kernel, stride, padding, ceil_mode, count_include_pad, dtype)
