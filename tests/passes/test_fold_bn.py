"""fold_bn: BN folded into the conv (any rank) or linear before it, or turned into a scale_shift."""
from __future__ import annotations

import numpy as np
import pytest

from convc.compiler import optimize
from convc.dsl import Network, Value
from pass_check import assert_same_outputs, check_rewrite, op_counts


def randomize(net: Network) -> Network:
    net.randomize_batch_norm(seed=7)
    return net


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ndim,groups", [(2, 1), (2, 2), (2, 4), (1, 1), (3, 1), (3, 2)])
def test_conv_then_bn_folds_into_the_conv(ndim: int, groups: int, bias: bool) -> None:
    net = Network("cbn")
    x = net.input((2, 4) + (5,) * ndim)
    y = net.conv(x, 8, 3, padding=1, groups=groups, bias=bias, name="conv", ndim=ndim)
    net.output(net.relu(net.batch_norm(y, eps=1e-3, name="bn")))
    g, _ = check_rewrite(randomize(net).graph, ["fold_bn"],
                         expect={"batch_norm": 0, "scale_shift": 0, f"conv{ndim}d": 1, "relu": 1})
    conv = g.node("conv")
    assert conv.attrs["bias"] is True and g.param_input(conv, "bias") == "conv.bias"
    assert g.node("relu").inputs == ("conv",)
    assert not any(k.startswith("bn.") for k in g.params)


def test_folded_weight_and_bias_follow_the_formula() -> None:
    """W' = W * gamma / sqrt(var + eps) per output channel; b' = (b - mean) * that + beta."""
    net = Network("formula")
    x = net.input((1, 2, 4, 4))
    net.output(net.batch_norm(net.conv2d(x, 3, 3, name="conv"), eps=0.01, name="bn"))
    randomize(net)
    p = {k: v.astype(np.float64) for k, v in net.graph.params.items()}
    g, _, _ = optimize(net, passes=["fold_bn"], check_numerics=False)
    s = p["bn.weight"] / np.sqrt(p["bn.running_var"] + 0.01)
    np.testing.assert_allclose(g.params["conv.weight"], p["conv.weight"] * s[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(g.params["conv.bias"], (p["conv.bias"] - p["bn.running_mean"]) * s
                               + p["bn.bias"], rtol=1e-6, atol=1e-7)
    assert g.params["conv.weight"].dtype == np.float32  # cast back to the parameter's dtype
    assert_same_outputs(net.graph, g, "float32")


def test_folding_does_not_touch_the_caller_s_parameters() -> None:
    net = Network("immutable")
    x = net.input((1, 2, 4, 4))
    net.output(net.batch_norm(net.conv2d(x, 3, 1, name="conv"), name="bn"))
    randomize(net)
    before = net.graph.params["conv.weight"].copy()
    optimize(net, passes=["fold_bn"], check_numerics=False)
    np.testing.assert_array_equal(net.graph.params["conv.weight"], before)
    assert "bn.weight" in net.graph.params


@pytest.mark.parametrize("bias", [True, False])
def test_linear_then_bn_folds(bias: bool) -> None:
    net = Network("lbn")
    x = net.input((3, 6))
    net.output(net.batch_norm(net.linear(x, 5, bias=bias, name="fc"), name="bn"))
    g, _ = check_rewrite(randomize(net).graph, ["fold_bn"], expect={"batch_norm": 0, "linear": 1})
    assert g.outputs == ["fc"] and g.node("fc").attrs["bias"]


def two_bn_readers(net: Network) -> Value:
    x = net.input((1, 3, 6, 6))
    y = net.conv2d(x, 4, 3, padding=1, name="conv")
    return net.add(net.batch_norm(y, name="bn_a"), net.batch_norm(y, name="bn_b"))


def test_conv_feeding_two_bns_keeps_them_as_scale_shifts() -> None:
    net = Network("two")
    net.output(two_bn_readers(net))
    g, _ = check_rewrite(randomize(net).graph, ["fold_bn"],
                         expect={"batch_norm": 0, "scale_shift": 2, "conv2d": 1})
    assert g.node("bn_a").op == "scale_shift" and g.node("bn_a").inputs[0] == "conv"
    assert g.param_input(g.node("conv"), "weight") == "conv.weight"
    np.testing.assert_array_equal(g.params["conv.weight"], net.graph.params["conv.weight"])


def test_conv_that_is_a_graph_output_keeps_its_bn() -> None:
    net = Network("out")
    x = net.input((1, 3, 6, 6))
    y = net.conv2d(x, 4, 3, name="conv")
    net.output(y, net.batch_norm(y, name="bn"))
    check_rewrite(randomize(net).graph, ["fold_bn"], expect={"batch_norm": 0, "scale_shift": 1})


def test_bn_after_pool_becomes_scale_shift_and_is_not_folded_into_the_padded_conv_after_it() -> None:
    net = Network("pool")
    x = net.input((2, 3, 8, 8))
    y = net.max_pool2d(net.conv2d(x, 4, 3, padding=1, name="conv1"), 2)
    y = net.batch_norm(y, name="bn")
    net.output(net.conv2d(y, 5, 3, padding=1, name="conv2"))  # zero padding: folding forward is wrong
    g, _ = check_rewrite(randomize(net).graph, ["fold_bn"], expect={"batch_norm": 0, "scale_shift": 1})
    ss = g.node("bn")
    assert ss.op == "scale_shift" and ss.inputs[0] == "max_pool2d" and g.node("conv2").inputs[0] == "bn"
    p = {k: v.astype(np.float64) for k, v in net.graph.params.items()}
    scale = p["bn.weight"] / np.sqrt(p["bn.running_var"] + 1e-5)
    np.testing.assert_allclose(g.params[ss.inputs[1]], scale, rtol=1e-12)
    shift = p["bn.bias"] - p["bn.running_mean"] * scale
    np.testing.assert_allclose(g.params[ss.inputs[2]], shift, rtol=1e-12)
    np.testing.assert_array_equal(g.params["conv2.weight"], net.graph.params["conv2.weight"])


def test_bn_after_an_activation_is_not_folded_through_it() -> None:
    net = Network("act")
    x = net.input((1, 3, 6, 6))
    net.output(net.batch_norm(net.relu(net.conv2d(x, 4, 3, name="conv")), name="bn"))
    check_rewrite(randomize(net).graph, ["fold_bn"], expect={"batch_norm": 0, "scale_shift": 1, "relu": 1})


def test_bn_of_a_graph_input() -> None:
    net = Network("in")
    net.output(net.batch_norm(net.input((2, 3, 4)), name="bn"))
    check_rewrite(randomize(net).graph, ["fold_bn"], expect={"batch_norm": 0, "scale_shift": 1})


def test_every_bn_of_a_network_with_several_patterns_in_float32() -> None:
    net = Network("mixed")
    x = net.input((2, 3, 8, 8))
    y = net.relu(net.batch_norm(net.conv2d(x, 6, 3, padding=1, bias=False, name="c1"), name="b1"))
    y = net.batch_norm(net.avg_pool2d(y, 2), name="b2")
    y = net.relu(net.batch_norm(net.conv2d(y, 6, 3, padding=1, groups=3, name="c2"), name="b3"))
    net.output(net.batch_norm(net.linear(net.flatten(y), 4, name="fc"), name="b4"))
    before = randomize(net).graph
    g, _, _ = optimize(before, passes=["fold_bn"], dtype="float32", check_numerics=False)
    assert op_counts(g)["batch_norm"] == 0 and op_counts(g)["scale_shift"] == 1
    assert_same_outputs(before, g, "float32")
