"""The NumPy backend as a whole: registration, capabilities, options, a small network end to end
against torch in float64, multiple outputs, operand safety and releasing intermediates."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convc
from convc.backends.numpy_ref import backend
from convc.errors import BackendError, OptionError
from convc.ops import CONV_ALGOS, SCHEMAS
from convc.numerics import budget, rel_err
from convc.registry import get_backend


def test_registered_under_numpy_entry_point() -> None:
    assert get_backend("numpy") is backend


def test_capabilities_cover_every_op_and_algorithm() -> None:
    caps = backend.capabilities
    assert caps.ops == frozenset(SCHEMAS) - {"input", "param"}
    assert caps.conv_algos == ("direct", "im2col", "winograd_2x2", "winograd_4x4", "depthwise")
    assert set(caps.conv_algos) <= set(CONV_ALGOS)
    assert caps.dtypes == ("float32", "float64")


def small_net() -> convc.Network:
    net = convc.Network("small", seed=1)
    x = net.input((2, 3, 12, 12))
    y = net.relu(net.batch_norm(net.conv2d(x, 8, 3, padding=1, name="c1"), name="bn"))
    y = net.max_pool2d(y, 3, stride=2, padding=1)
    y = net.conv2d(y, 8, 3, stride=2, padding="same", groups=2, name="c2")
    y = net.lrn(net.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False), size=3, alpha=0.1)
    y = net.dropout(net.flatten(y))
    net.output(net.softmax(net.linear(y, 5, name="fc")))
    net.randomize_batch_norm(seed=2)
    return net


def small_net_torch(net: convc.Network, x: np.ndarray) -> np.ndarray:
    """The same network written directly with torch.nn.functional, in float64."""
    p = {k: torch.from_numpy(v.astype(np.float64)) for k, v in net.graph.params.items()}
    t = torch.from_numpy(x.astype(np.float64))
    t = F.conv2d(t, p["c1.weight"], p["c1.bias"], padding=1)
    t = F.relu(F.batch_norm(t, p["bn.running_mean"], p["bn.running_var"], p["bn.weight"], p["bn.bias"],
                            training=False, eps=1e-5))
    t = F.max_pool2d(t, 3, 2, 1)
    # 'same' at stride 2 on 6x6: 3x3 out, one padding row/column in all, on the high side
    t = F.conv2d(F.pad(t, (0, 1, 0, 1)), p["c2.weight"], p["c2.bias"], stride=2, groups=2)
    t = F.avg_pool2d(t, 2, ceil_mode=True, count_include_pad=False)
    t = F.local_response_norm(t, 3, alpha=0.1, beta=0.75, k=2.0)
    return torch.softmax(F.linear(t.flatten(1), p["fc.weight"], p["fc.bias"]), dim=1).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_network_matches_torch(dtype: str) -> None:
    net = small_net()
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    out = convc.compile(net, backend="numpy", dtype=dtype, opt_level=0).run(x)[0]
    assert out.dtype == np.dtype(dtype)
    assert rel_err(out, small_net_torch(net, x)) <= budget(dtype, whole_model=True)


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(BackendError, match="float16.*float32, float64"):
        backend.compile(small_net().graph, dtype="float16")


def test_unknown_option_is_refused() -> None:
    with pytest.raises(OptionError, match="numpy.*no options.*threads"):
        backend.compile(small_net().graph, threads=4)


def test_wrong_input_shape_names_the_input() -> None:
    model = backend.compile(small_net().graph)
    with pytest.raises(BackendError, match=r"input 'x'.*\(2, 3, 12, 12\)"):
        model(np.zeros((1, 3, 12, 12), np.float32))


def test_float64_input_is_cast_to_the_working_dtype() -> None:
    model = backend.compile(small_net().graph, dtype="float32")
    out = model(np.random.default_rng(0).standard_normal((2, 3, 12, 12)))
    assert out.dtype == np.float32


def test_several_outputs_come_back_in_order() -> None:
    net = convc.Network("two_heads")
    x = net.input((1, 2, 4, 4))
    y = net.relu(x)
    net.output(net.global_max_pool(y), net.sigmoid(y))
    data = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    pooled, gated = backend.compile(net.graph, dtype="float64").run(data)
    np.testing.assert_array_equal(pooled, np.maximum(data, 0).max(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(gated, 1 / (1 + np.exp(-np.maximum(data, 0))), rtol=1e-15)


def test_operands_are_never_written() -> None:
    """A value read by several nodes must reach each of them unchanged (kernels write only their own
    outputs, even the in-place epilogue)."""
    net = convc.Network("fan_out")
    x = net.input((1, 2, 5, 5))
    a = net.dropout(x)
    b = net.relu(a)
    c = net.elu(a)
    d = net.sigmoid(a)
    net.output(net.concat([b, c, d, a]))
    data = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    before = data.copy()
    out = backend.compile(net.graph, dtype="float64").run(data)[0]
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(out[:, 6:], before)


def test_intermediates_are_released_after_their_last_use() -> None:
    net = convc.Network("chain")
    y = net.input((1, 4, 8, 8))
    for _ in range(12):
        y = net.tanh(net.relu(y))
    net.output(y)
    model = backend.compile(net.graph, dtype="float64")
    model(np.ones((1, 4, 8, 8)))
    assert model.peak_live_values <= 2
