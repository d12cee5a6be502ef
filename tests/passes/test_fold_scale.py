"""fold_channel_scale: a per-channel scale after a conv or linear moves into its weight and bias."""
from __future__ import annotations

import numpy as np
import pytest
from pass_check import check_rewrite, with_float64_params

from convc.dsl import Network


def scaled(layer: str, bias: bool) -> Network:
    net = Network("scaled", seed=2)
    if layer == "linear":
        y = net.linear(net.input((3, 6)), 4, bias=bias, name="layer")
    else:
        y = net.conv2d(net.input((2, 3, 5, 5)), 4, 3, padding=1, bias=bias, name="layer")
    net.output(net.relu(net.channel_scale(y, name="gamma")))
    net.graph.params["gamma.weight"] = np.array([0.5, -2.0, 1e-6, 3.0], np.float32)
    return net


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layer", ["conv2d", "linear"])
def test_scale_folds_into_the_layer(layer: str, bias: bool) -> None:
    net = scaled(layer, bias)
    g, _ = check_rewrite(with_float64_params(net.graph), ["fold_channel_scale"],
                         expect={layer: 1, "channel_scale": 0, "relu": 1})
    assert "gamma.weight" not in g.params and g.node("layer").attrs["bias"] is bias
    np.testing.assert_allclose(g.params["layer.weight"][1], net.graph.params["layer.weight"][1] * -2.0)


def test_scale_of_a_value_read_twice_stays() -> None:
    net = Network("twice")
    y = net.conv2d(net.input((1, 2, 4, 4)), 3, 1, name="layer")
    net.output(net.channel_scale(y, name="gamma"), net.relu(y))
    check_rewrite(net.graph, ["fold_channel_scale"], expect={"channel_scale": 1})


def test_scale_after_an_epilogue_stays() -> None:
    net = Network("after_relu")
    y = net.conv2d(net.input((1, 2, 4, 4)), 3, 1, name="layer")
    net.output(net.channel_scale(net.relu(y), name="gamma"))
    check_rewrite(net.graph, ["fuse_epilogue", "fold_channel_scale"], expect={"channel_scale": 1})
