"""The NumPy backend's im2col by blocks of output rows (conv_im2col.conv_im2col_blocked, taken when the
column matrix outgrows BLOCKED_ABOVE_BYTES): the block size shrunk so small convs split into several
blocks (a partial last one, several images), against torch float64 and the one-GEMM path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_numpy_conv import check, conv_graph

from convc.backends.numpy_ref import backend, conv_im2col


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every gathering conv blocked, about 3 output rows per block for these sizes."""
    monkeypatch.setattr(conv_im2col, "BLOCKED_ABOVE_BYTES", 0)
    monkeypatch.setattr(conv_im2col, "BLOCK_BYTES", 1 << 10)


def test_the_stem_sized_conv_takes_the_blocked_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """ResNet-50's 7x7 stride-2 stem has 7.4 MB of columns: blocked; a small conv is not."""
    calls: list[int] = []
    blocked = conv_im2col.conv_im2col_blocked
    monkeypatch.setattr(conv_im2col, "conv_im2col_blocked", lambda conv: (calls.append(1), blocked(conv))[1])
    check(conv_graph(2, (1, 3, 224, 224), 8, 7, stride=2, padding=3, algo="im2col"), "float32")
    check(conv_graph(2, (1, 3, 16, 16), 8, 7, stride=2, padding=3, algo="im2col"), "float32")
    assert calls == [1]


@pytest.mark.usefixtures("tiny_blocks")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epilogue", [(), (("relu",),), (("add",), ("relu",))])
def test_blocked_im2col_matches_torch_and_the_one_gemm_path(epilogue: tuple, dtype: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    graph = conv_graph(2, (2, 3, 13, 11), 5, 3, stride=(2, 1), padding=((1, 2), (0, 1)), dilation=(1, 2),
                       algo="im2col", epilogue=epilogue)
    check(graph, dtype)
    inputs = [np.random.default_rng(1).standard_normal(n.type.shape) for n in graph.inputs]
    blocked = backend.compile(graph, dtype=dtype).run(*inputs)[0]
    monkeypatch.setattr(conv_im2col, "BLOCKED_ABOVE_BYTES", 1 << 40)
    whole = backend.compile(graph, dtype=dtype).run(*inputs)[0]
    np.testing.assert_allclose(blocked, whole, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(3, 12), w=st.integers(3, 12), c=st.integers(1, 3), k=st.integers(1, 4),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       pads=st.tuples(*[st.integers(0, 2)] * 4), block=st.sampled_from([16, 1 << 8, 1 << 10]))
def test_blocked_im2col_property_matches_torch(h: int, w: int, c: int, k: int, kernel: tuple[int, int],
                                               stride: tuple[int, int], pads: tuple[int, ...],
                                               block: int) -> None:
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    assume(h + pads[0] + pads[1] >= kernel[0] and w + pads[2] + pads[3] >= kernel[1])
    saved = conv_im2col.BLOCKED_ABOVE_BYTES, conv_im2col.BLOCK_BYTES
    conv_im2col.BLOCKED_ABOVE_BYTES, conv_im2col.BLOCK_BYTES = 0, block  # hypothesis: no monkeypatch
    try:
        check(conv_graph(2, (1, c, h, w), k, kernel, stride=stride, padding=padding, algo="im2col"),
              "float32")
    finally:
        conv_im2col.BLOCKED_ABOVE_BYTES, conv_im2col.BLOCK_BYTES = saved
