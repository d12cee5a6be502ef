"""fuse_epilogue: conv/linear + activations + residual adds become one node with an ordered epilogue."""
from __future__ import annotations

from typing import Any

import pytest

from convc.backend import Backend, Capabilities
from convc.dsl import Network, Value
from convc.pass_manager import PassContext
from convc.passes.fuse_epilogue import fuse_epilogue
from pass_check import check_rewrite, with_float64_params

ACTIVATIONS: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
    ("relu", {}, ("relu",)),
    ("leaky_relu", {"negative_slope": 0.2}, ("leaky_relu", 0.2)),
    ("sigmoid", {}, ("sigmoid",)),
    ("tanh", {}, ("tanh",)),
    ("elu", {"alpha": 0.7}, ("elu", 0.7)),
    ("clip", {"min": 0.0, "max": 6.0}, ("clip", 0.0, 6.0)),
    ("hardswish", {}, ("hardswish",)),
    ("hardsigmoid", {}, ("hardsigmoid",)),
    ("silu", {}, ("silu",)),
    ("gelu", {}, ("gelu",)),
    ("gelu", {"approximate": "tanh"}, ("gelu_tanh",)),
]


@pytest.mark.parametrize("kind,kw,step", ACTIVATIONS, ids=[a[2][0] for a in ACTIVATIONS])
@pytest.mark.parametrize("layer", ["conv1d", "conv2d", "conv3d", "linear"])
def test_each_activation_after_each_layer_kind_is_fused(layer: str, kind: str, kw: dict[str, Any],
                                                        step: tuple[Any, ...]) -> None:
    net = Network("act")
    if layer == "linear":
        y = net.linear(net.input((3, 7)), 5, name="layer")
    else:
        nd = int(layer[4])
        y = net.conv(net.input((2, 3) + (5,) * nd), 4, 3, padding=1, name="layer", ndim=nd)
    net.output(net.activation(y, kind, **kw))
    g, _ = check_rewrite(net.graph, ["fuse_epilogue"], expect={layer: 1, kind: 0})
    assert g.node("layer").attrs["epilogue"] == (step,)
    assert g.outputs == ["layer"]


def basic_block(net: Network, x: Value, name: str, project: bool) -> Value:
    """ResNet's basic block: conv-bn-relu-conv-bn, + shortcut (a 1x1 conv-bn if `project`), relu."""
    with net.scope(name):
        y = net.relu(net.batch_norm(net.conv2d(x, 4, 3, padding=1, bias=False, name="conv1"), name="bn1"))
        y = net.batch_norm(net.conv2d(y, 4, 3, padding=1, bias=False, name="conv2"), name="bn2")
        shortcut = x
        if project:
            shortcut = net.batch_norm(net.conv2d(x, 4, 1, bias=False, name="down"), name="down_bn")
        return net.relu(net.add(y, shortcut))


def test_resnet_blocks_fuse_relu_add_relu_into_the_main_path_conv() -> None:
    net = Network("resblocks")
    x = net.input((2, 3, 6, 6))
    y = basic_block(net, x, "block1", project=True)
    net.output(basic_block(net, y, "block2", project=False))
    net.randomize_batch_norm(3)
    g, _ = check_rewrite(net.graph, ["fold_bn", "fuse_epilogue"],
                         expect={"conv2d": 5, "relu": 0, "add": 0, "batch_norm": 0})
    assert g.node("block1.conv1").attrs["epilogue"] == (("relu",),)
    assert g.node("block1.conv2").attrs["epilogue"] == (("add",), ("relu",))
    assert g.node("block1.down").attrs["epilogue"] == ()
    # The residual operand comes right after x, before the parameters.
    assert g.node("block1.conv2").inputs[:2] == ("block1.conv1", "block1.down")
    assert g.node("block2.conv2").inputs[:2] == ("block2.conv1", "block1.conv2")


def test_activation_add_activation_keeps_order() -> None:
    net = Network("order")
    x = net.input((1, 4, 5, 5))
    r = net.input((1, 4, 5, 5), name="r")
    y = net.leaky_relu(net.conv2d(x, 4, 3, padding=1, name="conv"), 0.1)
    net.output(net.tanh(net.add(r, y)))  # residual as the add's FIRST operand
    g, _ = check_rewrite(net.graph, ["fuse_epilogue"], expect={"conv2d": 1, "add": 0, "tanh": 0})
    assert g.node("conv").attrs["epilogue"] == (("leaky_relu", 0.1), ("add",), ("tanh",))
    assert g.node("conv").inputs[:2] == ("x", "r")


def test_linear_with_residual_add() -> None:
    net = Network("fcres")
    x = net.input((2, 6))
    net.output(net.relu(net.add(net.linear(x, 6, name="fc"), x)))
    g, _ = check_rewrite(net.graph, ["fuse_epilogue"], expect={"linear": 1, "add": 0, "relu": 0})
    assert g.node("fc").attrs["epilogue"] == (("add",), ("relu",))


def test_no_fusion_when_the_conv_has_two_readers() -> None:
    net = Network("two")
    x = net.input((1, 3, 5, 5))
    y = net.conv2d(x, 4, 3, padding=1, name="conv")
    net.output(net.add(net.relu(y), net.sigmoid(y)))
    g, _ = check_rewrite(net.graph, ["fuse_epilogue"], expect={"relu": 1, "sigmoid": 1, "add": 1})
    assert g.node("conv").attrs["epilogue"] == ()


def test_no_fusion_past_an_intermediate_with_two_readers_or_that_is_an_output() -> None:
    net = Network("partial")
    x = net.input((1, 3, 5, 5))
    a = net.relu(net.conv2d(x, 4, 3, padding=1, name="c1"))
    net.output(net.sigmoid(a), net.tanh(a))  # relu fuses; its value then has two readers
    b = net.relu(net.conv2d(x, 4, 3, padding=1, name="c2"))
    net.output(b, net.elu(b))  # relu fuses; the elu after an output value does not
    g, _ = check_rewrite(net.graph, ["fuse_epilogue"], expect={"relu": 0, "sigmoid": 1, "tanh": 1, "elu": 1})
    assert g.node("c1").attrs["epilogue"] == (("relu",),)
    assert g.node("c2").attrs["epilogue"] == (("relu",),)


def test_add_of_the_conv_with_itself_is_not_a_residual() -> None:
    net = Network("self")
    x = net.input((1, 3, 5, 5))
    y = net.conv2d(x, 4, 3, padding=1, name="conv")
    net.output(net.add(y, y))
    check_rewrite(net.graph, ["fuse_epilogue"], expect={"add": 1})


def test_a_target_without_fused_epilogues_gets_no_fusion() -> None:
    net = Network("nofuse")
    net.output(net.relu(net.conv2d(net.input((1, 3, 5, 5)), 4, 3, name="conv")))
    g = with_float64_params(net.graph)
    target = Backend("plain", Capabilities(ops=frozenset({"conv2d", "relu"}), fused_epilogue=False))
    ctx = PassContext(backend=target)
    assert fuse_epilogue(g, ctx) is False
    assert g.node("relu").inputs == ("conv",) and g.node("conv").attrs["epilogue"] == ()
    assert ctx.log and "plain" in ctx.log[0]
