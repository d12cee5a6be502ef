"""The register-blocked grouped 3x3 kernel (backends/numpy_ref/conv_grouped_simd.py, the NumPy backend's
"direct" algorithm for groups of 8 or more channels: RegNet-X/Y, ResNeXt) against torch
in float64: group widths with partial blocks of output channels and runs of positions that are not
whole blocks of vectors, stride, dilation and padding, both dtypes, epilogues (activations, residual
adds) with NaN and inf reaching them, the reads of its unchecked loads, the weights packed once per
layer, and the switch: CONVC_NUMBA=0 runs the NumPy direct kernel to the same numbers."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numpy_conv import conv_graph, torch_conv
from test_numpy_grouped_jit import EPILOGUES, run_both

from convc.backends.numpy_ref import (
    backend, conv_grouped_jit, conv_grouped_layout, conv_grouped_simd, jit, simd,
)
from convc.backends.numpy_ref.conv_depthwise_jit import RUN_MULTIPLE
from convc.backends.numpy_ref.conv_grouped_layout import DENSE_UP_TO, Geometry
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba is not installed")

WIDE = conv_grouped_simd.MIN_GROUP_CHANNELS


@pytest.fixture
def simd_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of conv_grouped_simd (1 per conv it runs)."""
    calls: list[int] = []
    real = conv_grouped_simd.conv_grouped_simd
    monkeypatch.setattr(conv_grouped_simd, "conv_grouped_simd", lambda conv: calls.append(1) or real(conv))
    return calls


@settings(max_examples=40, deadline=None)
@given(groups=st.integers(2, 3), in_group=st.integers(WIDE, WIDE + 5), out_group=st.integers(1, 10),
       height=st.integers(1, 12), width=st.integers(1, 40), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), pad=st.integers(0, 2), batch=st.integers(1, 2),
       epilogue=st.sampled_from(list(EPILOGUES)), dtype=st.sampled_from(["float32", "float64"]),
       chunk_bytes=st.sampled_from([conv_grouped_layout.CHUNK_BYTES, 1, 8000]), seed=st.integers(0, 50))
def test_matches_torch_and_the_numpy_kernel(groups: int, in_group: int, out_group: int, height: int,
                                            width: int, stride: int, dilation: int, pad: int, batch: int,
                                            epilogue: str, dtype: str, chunk_bytes: int, seed: int) -> None:
    """Any grouped 3x3 layer with groups of 8 or more channels: run by this kernel, within the direct
    algorithm's budget of torch float64 and of the NumPy path; also in chunks of one run of vectors
    (chunk_bytes 1) or a few (8000)."""
    span = 2 * dilation + 1
    if span > height + 2 * pad or span > width + 2 * pad:
        return  # the kernel does not fit: the schema rejects the layer
    graph = conv_graph(2, (batch, groups * in_group, height, width), groups * out_group, 3, stride, pad,
                       dilation, groups, seed % 2 == 0, algo="direct", epilogue=EPILOGUES[epilogue])
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    calls: list[int] = []
    real = conv_grouped_simd.conv_grouped_simd
    with mock.patch.object(conv_grouped_simd, "conv_grouped_simd", lambda c: calls.append(1) or real(c)), \
            mock.patch.object(conv_grouped_layout, "CHUNK_BYTES", chunk_bytes):
        compiled, fallback = run_both(graph, inputs, dtype)
    assert calls == [1]
    expected = torch_conv(graph, inputs)
    assert compiled.dtype == np.dtype(dtype)
    assert rel_err(compiled, expected) <= budget(dtype, "direct")
    assert rel_err(compiled, fallback) <= 2 * budget(dtype, "direct")


@settings(max_examples=300, deadline=None)
@given(out_h=st.integers(1, 300), out_w=st.integers(1, 300), sh=st.integers(1, 4), sw=st.integers(1, 4),
       dh=st.integers(1, 4), dw=st.integers(1, 4), dtype=st.sampled_from([np.float32, np.float64]))
def test_the_unchecked_loads_stay_in_the_input_copy(out_h: int, out_w: int, sh: int, sw: int, dh: int,
                                                    dw: int, dtype: type) -> None:
    """The kernel's loads (simd.load_unchecked at starts[t] + f, f < run, whole vectors) read inside
    each channel's phased copy for any output size, stride and dilation; the grid holds every tap."""
    at = Geometry.of((out_h, out_w), (sh, sw), (dh, dw), dtype)
    assert at.run % simd.lanes_of(dtype) == 0 and at.run >= (out_h - 1) * at.grid_w + out_w
    assert 0 <= at.starts.min() and at.last_read() < at.channel
    # the last valid output position's farthest tap lies in the copies (three column-shifted ones at
    # stride 1, else the stride's phases), not in the slack after them
    copies = 3 if at.dense else sh * sw
    assert at.dense == (sh == sw == 1 and out_w <= DENSE_UP_TO)
    assert at.channel == copies * at.grid_h * at.grid_w + RUN_MULTIPLE
    assert at.starts.max() + (out_h - 1) * at.grid_w + out_w - 1 < copies * at.grid_h * at.grid_w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shifted_copies_hold_the_padded_input(dtype: type) -> None:
    """fill_shifted's three copies against the definition, copy[j][q, x] = xpad[q, x + j * dw], with
    dilations 1-2 and asymmetric padding; rows past a vector's lanes (40 columns) included."""
    rng = np.random.default_rng(4)
    for height, width, dh, dw, (top, bottom), (left, right) in [
            (7, 9, 1, 1, (1, 1), (1, 1)), (5, 40, 2, 1, (2, 0), (0, 2)), (6, 11, 1, 2, (0, 2), (2, 2))]:
        plane = rng.standard_normal((height, width)).astype(dtype)
        out_h, out_w = height + top + bottom - 2 * dh, width + left + right - 2 * dw
        rows = out_h + 2 * dh
        padded = np.zeros((rows, width + left + right), dtype)
        padded[top:top + height, left:left + width] = plane
        copies = np.zeros(3 * rows * out_w + RUN_MULTIPLE, dtype)
        conv_grouped_layout.fill_shifted(plane, copies, rows, out_w, dw, top, left)
        got = copies[:3 * rows * out_w].reshape(3, rows, out_w)
        for j in range(3):
            np.testing.assert_array_equal(got[j], padded[:, j * dw:j * dw + out_w])
        assert not copies[3 * rows * out_w:].any()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epilogue", list(EPILOGUES), ids=list(EPILOGUES))
def test_every_epilogue(epilogue: str, dtype: str, simd_calls: list[int]) -> None:
    """Each epilogue, in the kernel (up to two residual adds) or after it, on a layer of several runs
    of four vectors, a tail of single vectors and a last block of three output channels."""
    graph = conv_graph(2, (1, 2 * WIDE, 20, 33), 14, 3, 1, 1, 1, 2, True, algo="direct",
                       epilogue=EPILOGUES[epilogue])
    inputs = [np.random.default_rng(5).standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    compiled, fallback = run_both(graph, inputs, dtype)
    assert simd_calls == [1]
    expected = torch_conv(graph, inputs)
    assert rel_err(compiled, expected) <= budget(dtype, "direct")
    assert rel_err(fallback, expected) <= budget(dtype, "direct")


@pytest.mark.parametrize("in_group, size, stride", [(48, 14, 1), (120, 7, 1), (112, 9, 2), (232, 4, 1)])
def test_regnet_group_widths(in_group: int, size: int, stride: int) -> None:
    """RegNet's group widths (X-3.2GF 48, X-8GF 120, Y-16GF 112, Y-32GF 232: not all whole vectors or
    blocks) in float32 with bias and ReLU, against torch float64."""
    graph = conv_graph(2, (1, 2 * in_group, size, size), 2 * in_group, 3, stride, 1, 1, 2, True,
                       algo="direct", epilogue=(("relu",),))
    x = np.random.default_rng(in_group).standard_normal((1, 2 * in_group, size, size)).astype(np.float32)
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        got = backend.compile(graph, dtype="float32").run(x)[0]
    assert rel_err(got, torch_conv(graph, [x])) <= budget("float32", "direct")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("stride", [1, 2])
def test_nan_and_inf_spread_as_in_torch(dtype: str, stride: int, simd_calls: list[int]) -> None:
    """NaN and +-inf in the input, and an inf weight meeting the zero padding (0 * inf = NaN): the same
    NaNs and infinities as torch, the finite values within budget."""
    c = 2 * WIDE
    graph = conv_graph(2, (1, c, 9, 11), 12, 3, stride, 1, 1, 2, True, algo="direct",
                       epilogue=(("relu",),))
    weight = graph.param_of(graph["conv"], "weight")
    weight[7, 1, 0, 0] = np.inf
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, c, 9, 11)).astype(np.float32)
    x[0, 0, 4, 4], x[0, WIDE + 5, 2, 7], x[0, WIDE + 6, 8, 0] = np.nan, np.inf, -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        compiled, fallback = run_both(graph, [x], dtype)
        expected = torch_conv(graph, [x])
    assert simd_calls == [1]
    assert np.isnan(expected).any() and np.isinf(expected).any()
    for got in (compiled, fallback):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        infinite = np.isinf(expected)
        np.testing.assert_array_equal(got[infinite], expected[infinite])
        finite = np.isfinite(expected)
        assert rel_err(got[finite], expected[finite]) <= budget(dtype, "direct")


def test_weights_are_packed_once_per_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three forwards of a model pack each layer's weights once; a second model of the same shapes
    (other weights) packs its own and gets its own numbers."""
    packs: list[int] = []
    real = conv_grouped_layout.pack_weights
    monkeypatch.setattr(conv_grouped_layout, "pack_weights", lambda *a: packs.append(1) or real(*a))
    monkeypatch.setenv(jit.SWITCH, "1")
    x = np.random.default_rng(2).standard_normal((1, 2 * WIDE, 6, 6)).astype(np.float32)
    graph = conv_graph(2, (1, 2 * WIDE, 6, 6), 2 * WIDE, 3, 1, 1, 1, 2, True, algo="direct")
    model = backend.compile(graph, dtype="float32")
    for _ in range(3):
        got = model.run(x)[0]
    assert len(packs) == 1
    assert rel_err(got, torch_conv(graph, [x])) <= budget("float32", "direct")
    other = conv_graph(2, (1, 2 * WIDE, 6, 6), 2 * WIDE, 3, 1, 1, 1, 2, True, algo="direct")
    weight = other.param_of(other["conv"], "weight")
    weight *= -2.0
    got_other = backend.compile(other, dtype="float32").run(x)[0]
    assert len(packs) == 2
    assert rel_err(got_other, torch_conv(other, [x])) <= budget("float32", "direct")


def test_the_switch_picks_the_kernel(monkeypatch: pytest.MonkeyPatch, simd_calls: list[int]) -> None:
    """With numba on, groups of 8 or more channels run this kernel, of 2-7 conv_grouped_jit's loop;
    with CONVC_NUMBA=0 neither runs."""
    jit_calls: list[int] = []
    real = conv_grouped_jit.conv_grouped_jit
    monkeypatch.setattr(conv_grouped_jit, "conv_grouped_jit", lambda conv: jit_calls.append(1) or real(conv))
    for switch, in_group, expected in (("1", WIDE, ([1], [])), ("1", WIDE - 1, ([], [1])),
                                       ("0", WIDE, ([], []))):
        monkeypatch.setenv(jit.SWITCH, switch)
        graph = conv_graph(2, (1, 2 * in_group, 5, 5), 8, 3, 1, 1, 1, 2, True, algo="direct")
        x = np.random.default_rng(in_group).standard_normal((1, 2 * in_group, 5, 5))
        simd_calls.clear()
        jit_calls.clear()
        got = backend.compile(graph, dtype="float64").run(x)[0]
        assert (simd_calls, jit_calls) == expected, (switch, in_group)
        assert rel_err(got, torch_conv(graph, [x])) <= budget("float64", "direct")
