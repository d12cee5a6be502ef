"""NiN, the AlphaGo policy network, Kim's text CNN and C3D against their papers' architectures.

None of these papers prints a parameter total, so counts are checked against the formula the paper's
layer list implies (k*k*C_in*C_out + C_out per conv), written out here independently of the builders.
"""
from __future__ import annotations

import numpy as np
import pytest
from zoo_helpers import weightless, weightless_summary

import convc
import convc.models
from convc.numerics import rel_err


def conv_params(c_in: int, c_out: int, k: int, dims: int = 2, bias: bool = True) -> int:
    return k ** dims * c_in * c_out + (c_out if bias else 0)


def test_nin_mlpconv_blocks_and_sizes() -> None:
    s = weightless_summary("nin")
    sizes = {"conv1": (96, 54), "pool1": (96, 26), "conv2": (256, 26), "pool2": (256, 12),
             "conv3": (384, 12), "pool3": (384, 5), "conv4": (1000, 5), "cccp8": (1000, 5),
             "pool4": (1000, 1)}
    for layer, (c, hw) in sizes.items():
        assert s.layer(layer).shape == (1, c, hw, hw), layer
    assert s.layers[-1].shape == (1, 1000)
    expected = sum(conv_params(cin, cout, k) + 2 * conv_params(cout, cout, 1)
                   for cin, cout, k in ((3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 1000, 3)))
    assert s.total_params == expected
    g = weightless("nin").graph
    assert not g.nodes("linear")  # the global average pool replaces the FC layers
    assert g.node("conv1").attrs["stride"] == (4, 4)
    assert [n.name for n in g.nodes("conv2d")][:3] == ["conv1", "cccp1", "cccp2"]
    assert weightless_summary("nin", num_classes=10).layers[-1].shape == (1, 10)


def test_alphago_policy_network() -> None:
    s = weightless_summary("alphago_policy")
    assert s.layers[0].shape == (1, 48, 19, 19)
    for i in range(1, 13):
        assert s.layer(f"conv{i}").shape == (1, 192, 19, 19)
    assert s.layer("conv13").shape == (1, 1, 19, 19)
    g = weightless("alphago_policy").graph
    assert g.node("conv1").attrs["kernel"] == (5, 5) and g.node("conv2").attrs["kernel"] == (3, 3)
    assert g.node("conv13").attrs["bias"] is False
    assert g.params["position_bias.bias"].shape == (1, 19, 19)  # one bias per board position
    assert s.layers[-1].op == "softmax" and s.layers[-1].shape == (1, 361)
    expected = (conv_params(48, 192, 5) + 11 * conv_params(192, 192, 3) + conv_params(192, 1, 1, bias=False)
                + 19 * 19)
    assert s.total_params == expected == 3_882_793
    assert weightless_summary("alphago_policy", k=128).layer("conv5").shape == (1, 128, 19, 19)


def test_alphago_policy_outputs_a_distribution_over_moves() -> None:
    net = convc.models.get("alphago_policy", k=8, batch=2)
    x = np.random.default_rng(0).standard_normal((2, 48, 19, 19))
    (p,) = convc.compile(net, backend="numpy", dtype="float64", opt_level=0).run(x)
    assert p.shape == (2, 361) and np.all(p > 0)
    assert rel_err(p.sum(axis=1), np.ones(2)) < 1e-12


def test_text_cnn_max_over_time() -> None:
    s = weightless_summary("text_cnn")
    assert s.layers[0].shape == (1, 300, 64)
    for i, width in enumerate((3, 4, 5)):
        assert s.layer(f"convs.{i}").shape == (1, 100, 64 - width + 1)  # valid convolution over time
        assert s.layer(f"max_over_time{width}").shape == (1, 100, 1)
    assert s.layer("concat").shape == (1, 300, 1)
    assert s.layers[-1].shape == (1, 2)
    assert s.total_params == sum(conv_params(300, 100, w, dims=1) for w in (3, 4, 5)) + 300 * 2 + 2
    assert weightless("text_cnn").graph.node("dropout").attrs["p"] == 0.5


def test_text_cnn_pools_the_maximum_over_the_whole_sentence() -> None:
    # A sentence of zeros with one spike: max over time makes its position irrelevant (as long as every
    # filter width sees it at every tap: positions 4..7 of 12 for widths up to 5).
    net = convc.models.get("text_cnn", embedding=4, input_size=12, maps=3, num_classes=2)
    model = convc.compile(net, backend="numpy", dtype="float64", opt_level=0)
    x = np.zeros((1, 4, 12))
    early, late = x.copy(), x.copy()
    early[0, :, 4] = [1.0, -2.0, 0.5, 3.0]
    late[0, :, 7] = [1.0, -2.0, 0.5, 3.0]
    assert rel_err(model.run(early)[0], model.run(late)[0]) < 1e-12


def test_c3d_layers_follow_tran_et_al() -> None:
    s = weightless_summary("c3d")
    assert s.layers[0].shape == (1, 3, 16, 112, 112)
    expected = {"conv1a": (64, 16, 112), "pool1": (64, 16, 56), "conv2a": (128, 16, 56),
                "pool2": (128, 8, 28),
                "conv3b": (256, 8, 28), "pool3": (256, 4, 14), "conv4b": (512, 4, 14), "pool4": (512, 2, 7),
                "conv5b": (512, 2, 7), "pool5": (512, 1, 4)}
    for layer, (c, d, hw) in expected.items():
        assert s.layer(layer).shape == (1, c, d, hw, hw), layer
    g = weightless("c3d").graph
    for conv in g.nodes("conv3d"):
        assert conv.attrs["kernel"] == (3, 3, 3) and conv.attrs["padding"] == ((1, 1),) * 3, conv.name
    assert g.node("pool1").attrs["kernel"] == (1, 2, 2) and g.node("pool2").attrs["kernel"] == (2, 2, 2)
    channels = [3, 64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(conv_params(a, b, 3, dims=3) for a, b in zip(channels, channels[1:]))
    fcs = 8192 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 487 + 487
    assert s.total_params == convs + fcs


@pytest.mark.parametrize("width, first, fc", [(0.125, 8, 512), (0.5, 32, 2048)])
def test_c3d_width_scales_every_layer(width: float, first: int, fc: int) -> None:
    s = weightless_summary("c3d", width=width, input_size=(16, 32, 32), num_classes=5)
    assert s.layer("conv1a").shape == (1, first, 16, 32, 32)
    assert s.layer("conv5b").shape[1] == 8 * first
    assert s.layer("pool5").shape == (1, 8 * first, 1, 2, 2)
    assert s.layer("fc7").shape == (1, fc) and s.layers[-1].shape == (1, 5)
