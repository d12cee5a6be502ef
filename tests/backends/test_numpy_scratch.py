"""Padding without padded copies on the NumPy backend: window clipping (valid_outputs) against brute force,
convolutions and pooling that never call np.pad, scratch buffers reused across calls and layers without
stale values leaking into results, and models run from several threads at once."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convc
from convc.backends.numpy_ref import backend
from convc.backends.numpy_ref.scratch import release_scratch, scratch
from convc.backends.numpy_ref.windows import valid_outputs
from convc.numerics import budget, rel_err


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 12), out=st.integers(0, 14), offset=st.integers(0, 12), stride=st.integers(1, 4),
       low_pad=st.integers(0, 6))
def test_valid_outputs_matches_brute_force(size: int, out: int, offset: int, stride: int, low_pad: int) -> None:
    lo, hi = valid_outputs(size, out, offset, stride, low_pad)
    expected = [o for o in range(out) if 0 <= o * stride + offset - low_pad < size]
    assert list(range(lo, hi)) == expected


def test_scratch_is_reused_and_per_thread() -> None:
    a = scratch("test purpose", (4, 8), np.float32)
    b = scratch("test purpose", (2, 3), np.float64)  # smaller: the same memory
    assert np.shares_memory(a, b) and b.shape == (2, 3) and b.dtype == np.float64
    c = scratch("test purpose", (64, 64), np.float32)  # larger: a new buffer
    assert c.shape == (64, 64) and c.flags.c_contiguous
    other: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: other.append(scratch("test purpose", (64, 64), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(c, other[0])
    release_scratch()
    assert not np.shares_memory(c, scratch("test purpose", (64, 64), np.float32))


def two_padded_convs(algo: str) -> convc.Network:
    """A large unpadded conv (fills the scratch with non-zero columns) then a small padded, strided,
    dilated one, and a padded max pool: the second layer's zero taps sit where the first wrote data.
    `algo` runs "big" and "last" (Winograd needs stride and dilation 1); "small" is always im2col."""
    net = convc.Network("scratch_reuse", seed=3)
    x = net.input((2, 3, 13, 13))
    y = net.conv2d(x, 8, 3, padding=0, name="big")
    y = net.conv2d(y, 5, 3, stride=2, padding=2, dilation=2, name="small")
    y = net.conv2d(y, 4, 3, padding=1, name="last")
    net.output(net.pool("max", y, 3, stride=2, padding=1, name="pool", ndim=2))
    graph = net.graph
    for name, chosen in (("big", algo), ("small", "im2col"), ("last", algo)):
        graph.replace_node(graph[name].replace(attrs={**graph[name].attrs, "algo": chosen}))
    graph.verify()
    return net


def torch_reference(net: convc.Network, x: np.ndarray) -> np.ndarray:
    p = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.graph.params.items()}
    t = torch.from_numpy(x.astype(np.float64))
    t = F.conv2d(t, p["big.weight"], p["big.bias"])
    t = F.conv2d(t, p["small.weight"], p["small.bias"], stride=2, padding=2, dilation=2)
    t = F.conv2d(t, p["last.weight"], p["last.bias"], padding=1)
    return F.max_pool2d(t, 3, 2, 1).numpy()


@pytest.mark.parametrize("algo", ["im2col", "direct", "winograd_2x2", "winograd_4x4"])
def test_padded_layers_never_copy_padding_and_reuse_scratch_cleanly(algo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net = two_padded_convs(algo)
    model = backend.compile(net.graph, dtype="float64")
    if algo == "im2col":  # the gather and the pooling clip their windows: np.pad is never called
        monkeypatch.setattr(np, "pad", lambda *a, **k: pytest.fail("np.pad called"))
    rng = np.random.default_rng(0)
    x1, x2 = (rng.standard_normal((2, 3, 13, 13)) for _ in range(2))
    y1 = model.run(x1)[0]
    kept = y1.copy()
    y2 = model.run(x2)[0]
    np.testing.assert_array_equal(y1, kept)  # the second call wrote no array the first returned
    assert rel_err(y1, torch_reference(net, x1)) <= budget("float64")
    assert rel_err(y2, torch_reference(net, x2)) <= budget("float64")


def test_models_run_in_several_threads_at_once() -> None:
    net = two_padded_convs("im2col")
    model = backend.compile(net.graph, dtype="float32")
    inputs = [np.random.default_rng(seed).standard_normal((2, 3, 13, 13)).astype(np.float32)
              for seed in range(4)]
    expected = [model.run(x)[0] for x in inputs]
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        for _ in range(20):
            results[i].append(model.run(inputs[i])[0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert len(results[i]) == 20
        for y in results[i]:
            np.testing.assert_array_equal(y, expected[i])
