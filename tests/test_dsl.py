"""The DSL: shapes as you build, naming, parameters, and every definition error naming its layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import convc
from convc.errors import DefinitionError, ParameterError


def small_net() -> convc.Network:
    net = convc.Network("small", seed=3)
    x = net.input((2, 3, 16, 16))
    with net.sequential("features"):
        y = net.conv2d(x, 8, 3, padding=1)
        y = net.relu(y)
        y = net.max_pool2d(y, 2)
    with net.scope("head"):
        y = net.linear(net.flatten(y), 10, name="fc")
    net.output(y)
    return net


def test_shapes_are_known_at_once() -> None:
    net = convc.Network()
    x = net.input((1, 3, 224, 224))
    y = net.conv2d(x, 64, 7, stride=2, padding=3, bias=False, name="conv1")
    assert y.shape == (1, 64, 112, 112) and y.dtype == "float32"
    assert net.max_pool2d(y, 3, stride=2, padding=1).shape == (1, 64, 56, 56)
    assert net.conv2d(x, 8, 3, padding="same", stride=2).shape == (1, 8, 112, 112)
    assert net.conv2d(x, 8, 3, padding=((0, 2), (1, 0))).shape == (1, 8, 224, 223)
    assert net.conv2d(x, 8, 3, dilation=2, padding="valid").shape == (1, 8, 220, 220)
    assert net.conv1d(net.input((1, 300, 64), name="t"), 100, 3).shape == (1, 100, 62)
    v = net.input((1, 3, 16, 32, 32), name="v")
    assert net.conv3d(v, 4, 3, padding=1).shape == (1, 4, 16, 32, 32)
    assert net.max_pool3d(v, (1, 2, 2)).shape == (1, 3, 16, 16, 16)
    assert net.avg_pool2d(x, 3, stride=2, ceil_mode=True).shape == (1, 3, 112, 112)
    assert net.global_avg_pool(x).shape == (1, 3, 1, 1)
    assert net.maxout(net.conv2d(x, 8, 1), 4).shape == (1, 2, 224, 224)


def test_torch_agrees_on_output_sizes() -> None:
    net = convc.Network()
    x = net.input((1, 3, 33, 17))
    for k, s, p, d in [(3, 2, 1, 1), (5, 3, 2, 2), (7, 2, 3, 1), (2, 2, 0, 1)]:
        y = net.conv2d(x, 4, k, stride=s, padding=p, dilation=d)
        ref = torch.nn.functional.conv2d(torch.zeros(1, 3, 33, 17), torch.zeros(4, 3, k, k), stride=s,
                                         padding=p, dilation=d)
        assert y.shape == tuple(ref.shape)
    for k, s, p, ceil in [(3, 2, 1, True), (3, 2, 0, True), (2, 2, 0, False), (3, 3, 1, True)]:
        y = net.max_pool2d(x, k, stride=s, padding=p, ceil_mode=ceil)
        ref = torch.nn.functional.max_pool2d(torch.zeros(1, 3, 33, 17), k, s, p, ceil_mode=ceil)
        assert y.shape == tuple(ref.shape)


def test_names_follow_scopes_and_sequential() -> None:
    net = small_net()
    assert set(net.state_dict()) == {"features.0.weight", "features.0.bias", "head.fc.weight", "head.fc.bias"}
    names = [n.name for n in net.graph.nodes() if n.op != "param"]
    assert names == ["x", "features.0", "features.1", "features.2", "head.flatten", "head.fc"]


def test_he_init_is_seeded_and_order_independent() -> None:
    a, b = small_net(), small_net()
    w = a.state_dict()["features.0.weight"]
    np.testing.assert_array_equal(w, b.state_dict()["features.0.weight"])
    assert abs(w.std() - np.sqrt(2 / 27)) < 0.05  # He: std sqrt(2 / fan_in), fan_in = 3*3*3
    assert np.any(a.state_dict()["features.0.bias"] != 0)


def test_load_state_dict_from_numpy_and_torch() -> None:
    net = small_net()
    sd = {k: torch.randn(v.shape) for k, v in net.state_dict().items()}
    sd["features.0.num_batches_tracked"] = torch.tensor(3)  # torch's training counter is ignored
    net.load_state_dict(sd)
    np.testing.assert_allclose(net.state_dict()["head.fc.bias"], sd["head.fc.bias"].numpy())


def test_load_state_dict_reports_every_bad_key_at_once() -> None:
    net = small_net()
    sd = {k: np.zeros(v.shape) for k, v in net.state_dict().items()}
    del sd["features.0.bias"]
    sd["head.fc.weight"] = np.zeros((10, 3))
    sd["extra.weight"] = np.zeros(4)
    with pytest.raises(ParameterError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys: features.0.bias (8,)" in msg
    assert "unexpected keys: extra.weight (4,)" in msg
    assert "head.fc.weight: got (10, 3), expected (10, 512)" in msg


def _build(fn):  # noqa: ANN001, ANN202
    net = convc.Network("bad")
    x = net.input((1, 3, 5, 5))
    with net.sequential("features"):
        fn(net, x)


@pytest.mark.parametrize("fn, expected", [
    (lambda n, x: n.conv2d(x, 96, 11), "conv2d 'features.0': kernel 11x11 does not fit input 5x5 with padding 0"),
    (lambda n, x: n.conv2d(x, 8, 3, stride=0), "conv2d 'features.0': stride (0, 0) must be positive"),
    (lambda n, x: n.conv2d(x, 8, 0), "conv2d 'features.0': kernel (0, 0) must be positive"),
    (lambda n, x: n.max_pool2d(x, 2, stride=-1), "max_pool2d 'features.0': kernel (2, 2) and stride (-1, -1)"),
    (lambda n, x: n.conv2d(x, 8, 3, groups=2), "conv2d 'features.0': groups=2 does not divide the 3 input"),
    (lambda n, x: n.conv2d(x, 8, 3, padding="full"), "conv2d 'features.0': padding 'full' is not valid"),
    (lambda n, x: n.linear(x, 10), "linear 'features.0': expects a 2D (N, features) input, got f32[1,3,5,5]; "
                                   "insert flatten() before it"),
    (lambda n, x: n.activation(x, "swish"), "activation 'features.0': unknown activation 'swish'"),
    (lambda n, x: n.dropout(x, -0.1), "dropout 'features.0': rate p=-0.1 must be in [0, 1)"),
    (lambda n, x: n.add(x, n.conv2d(x, 4, 1)), "add 'features.1': operands have different shapes "
                                               "f32[1,3,5,5] and f32[1,4,5,5] (channels 3 vs 4)"),
    (lambda n, x: n.concat([x, n.max_pool2d(x, 2)]), "concat 'features.1': operands f32[1,3,5,5] and "
                                                     "f32[1,3,2,2] differ outside axis 1"),
    (lambda n, x: n.maxout(x, 2), "maxout 'features.0': k=2 does not divide the 3 channels"),
    (lambda n, x: n.max_pool2d(x, 3, padding=2), "max_pool2d 'features.0': padding 2x2 must be at most half"),
])
def test_definition_errors_name_the_layer(fn, expected: str) -> None:  # noqa: ANN001
    with pytest.raises(DefinitionError) as e:
        _build(fn)
    assert expected in str(e.value)


def test_error_for_foreign_values_and_duplicate_names() -> None:
    a, b = convc.Network("a"), convc.Network("b")
    xa = a.input((1, 3, 8, 8))
    with pytest.raises(DefinitionError, match="relu 'relu': operand .* is not a value of network 'b'"):
        b.relu(xa)
    a.relu(xa, name="r")
    with pytest.raises(DefinitionError, match="relu 'r': a layer of that name already exists"):
        a.relu(xa, name="r")
