"""The DSL under a careless hand: every mistake is a DefinitionError (or SizeLimitError / ParameterError)
naming the layer and the argument, raised where it is written; nothing is wrapped, dropped or half-done."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from bad_helpers import raises_naming, tiny_net

import convc
from convc.errors import DefinitionError, OptionError, ParameterError, SizeLimitError


def net_and_x(shape: tuple[int, ...] = (1, 3, 8, 8)) -> tuple[convc.Network, convc.Value]:
    net = convc.Network("n")
    return net, net.input(shape)


@pytest.mark.parametrize("rank, axis", [(2, 5), (2, -3), (4, 4), (3, 100)])
def test_out_of_range_softmax_axes_are_refused_not_wrapped(rank: int, axis: int) -> None:
    net, x = net_and_x((2, 3, 4, 5)[:rank])
    raises_naming(DefinitionError, ("softmax 'sm'", f"axis={axis}", f"rank-{rank}"),
                  lambda: net.softmax(x, axis=axis, name="sm"))


def test_negative_axes_in_range_count_from_the_end_like_torch() -> None:
    net, x = net_and_x((2, 3, 4))
    assert net.graph.node(net.softmax(x, axis=-1).name).attrs["axis"] == 2
    assert net.concat([x, x], axis=-2).shape == (2, 6, 4)


@pytest.mark.parametrize("axis", [5, -5, 4])
def test_out_of_range_concat_axes_are_refused(axis: int) -> None:
    net, x = net_and_x()
    raises_naming(DefinitionError, ("concat 'cat'", f"axis={axis}", "rank-4"),
                  lambda: net.concat([x, x], axis=axis, name="cat"))


def test_a_value_of_another_network_with_the_same_name_is_not_an_output() -> None:
    a, b = tiny_net("same"), tiny_net("same")
    foreign = convc.Value(b, "relu", b.graph.node("relu").type)
    raises_naming(DefinitionError, ("not a value of network 'same'", "another network"),
                  lambda: a.output(foreign))
    assert a.graph.outputs == ["relu"]  # unchanged


def test_numpy_integers_are_fine_sizes() -> None:
    net, x = net_and_x()
    y = net.conv2d(x, np.int64(4), np.int64(3), stride=np.int32(1), padding=np.int64(1), groups=np.int8(1))
    y = net.max_pool2d(y, np.int64(2))
    y = net.linear(net.flatten(y), np.int64(5))
    net.output(y)
    assert y.shape == (1, 5)
    ref = convc.Network("ref")
    r = ref.linear(ref.flatten(ref.max_pool2d(ref.conv2d(ref.input((1, 3, 8, 8)), 4, 3, padding=1), 2)), 5)
    ref.output(r)
    assert [(n.op, n.attrs) for n in net.graph.nodes()] == [(n.op, n.attrs) for n in ref.graph.nodes()]
    assert all(type(v) is int for n in net.graph.nodes() for k, v in n.attrs.items() if k == "out_channels")


@pytest.mark.parametrize("kernel", [3.0, None, "3", (3, None), (3.5, 3), [3], True])
def test_non_integer_kernel_sizes_are_named(kernel: object) -> None:
    net, x = net_and_x()
    raises_naming(DefinitionError, ("conv2d 'c'", "kernel", repr(kernel)),
                  lambda: net.conv2d(x, 4, kernel, name="c"))


@pytest.mark.parametrize("arg, value", [("out_channels", 4.0), ("out_channels", None), ("groups", "1"),
                                        ("stride", 1.5), ("padding", None), ("dilation", "2")])
def test_non_integer_conv_arguments_are_named(arg: str, value: object) -> None:
    net, x = net_and_x()
    kw = {"out_channels": 4, "kernel": 3, arg: value}
    raises_naming(DefinitionError, ("conv2d 'c'", arg if arg != "dilation" else "dilation"),
                  lambda: net.conv2d(x, name="c", **kw))


@pytest.mark.parametrize("bias", ["no", 0, 1, None, "False"])
def test_bias_must_be_a_bool(bias: object) -> None:
    net, x = net_and_x()
    raises_naming(DefinitionError, ("conv2d 'c'", f"bias={bias!r}", "True or False"),
                  lambda: net.conv2d(x, 4, 3, bias=bias, name="c"))
    flat = net.flatten(x)
    raises_naming(DefinitionError, ("linear 'fc'", "bias"), lambda: net.linear(flat, 4, bias=bias, name="fc"))


@pytest.mark.parametrize("call, culprit", [
    (lambda n, x: n.leaky_relu(x, "0.1", name="l"), "negative_slope"),
    (lambda n, x: n.elu(x, float("nan"), name="l"), "alpha"),
    (lambda n, x: n.batch_norm(x, eps=1j, name="l"), "eps"),
    (lambda n, x: n.dropout(x, p=None, name="l"), "p=None"),
    (lambda n, x: n.lrn(x, size=2.0, name="l"), "size"),
    (lambda n, x: n.max_pool2d(x, 2, ceil_mode="yes", name="l"), "ceil_mode"),
    (lambda n, x: n.maxout(x, k=1.5, name="l"), "k=1.5"),
    (lambda n, x: n.flatten(x, start_dim=7, name="l"), "start_dim 7"),
    (lambda n, x: n.flatten(x, start_dim=1.0, name="l"), "start_dim=1.0"),
])
def test_bad_scalar_arguments_are_named(call: object, culprit: str) -> None:
    net, x = net_and_x()
    raises_naming(DefinitionError, ("'l'", culprit), lambda: call(net, x))  # type: ignore[operator]


def test_complex_inputs_are_refused_by_dtype() -> None:
    net = convc.Network("n")
    raises_naming(OptionError, ("input 'x'", "complex64"), lambda: net.input((1, 3), dtype="complex64"))


def test_a_36_tib_parameter_is_refused_before_allocating() -> None:
    net, x = net_and_x((1, 1000000, 4, 4))
    raises_naming(SizeLimitError, ("conv2d 'big'", "big.weight", "36.0 TB"),
                  lambda: net.conv2d(x, 1000000, 3, name="big"))
    assert "big" not in net.graph


def test_a_structure_only_network_of_that_size_is_refused_at_compile() -> None:
    net = convc.Network("n", init=False)
    x = net.input((1, 1000000, 4, 4))
    net.output(net.conv2d(x, 1000000, 3, name="big"))  # costs no memory: nothing to refuse yet
    raises_naming(SizeLimitError, ("graph 'n'", "memory limit"), lambda: convc.compile(net, opt_level=0))


def test_the_memory_limit_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    net = tiny_net()
    monkeypatch.setenv("CONVC_MEMORY_LIMIT", "1K")
    raises_naming(SizeLimitError, ("graph 'tiny'", "1.0 KB"), lambda: convc.compile(net))
    monkeypatch.setenv("CONVC_MEMORY_LIMIT", "lots")
    raises_naming(OptionError, "CONVC_MEMORY_LIMIT", lambda: convc.compile(net))
    monkeypatch.setenv("CONVC_MEMORY_LIMIT", "1G")
    assert convc.compile(net).run(np.ones((1, 3, 8, 8)))[0].shape == (1, 4, 8, 8)


def test_load_state_dict_is_all_or_nothing() -> None:
    net = tiny_net()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    bad = {"conv.weight": np.ones((4, 3, 3, 3)), "conv.bias": np.array(["a"] * 4)}
    raises_naming(ParameterError, ("conv.bias", "nothing was loaded"), lambda: net.load_state_dict(bad))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # the good weight was not applied either


@pytest.mark.parametrize("value, culprit", [
    (np.ones(4, np.complex64), "complex"),
    (torch.ones(4, dtype=torch.complex64), "complex"),
    (torch.ones(4, device="meta"), "meta"),
    (np.array([object()] * 4), "object"),
])
def test_load_state_dict_refuses_values_that_are_not_real_weights(value: object, culprit: str) -> None:
    net = tiny_net()
    before = net.state_dict()["conv.bias"].copy()
    mapping = {"conv.weight": np.zeros((4, 3, 3, 3)), "conv.bias": value}
    raises_naming(ParameterError, ("conv.bias", culprit), lambda: net.load_state_dict(mapping))
    np.testing.assert_array_equal(net.state_dict()["conv.bias"], before)


def test_weights_that_require_grad_load_as_their_values() -> None:
    net = tiny_net()
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    net.load_state_dict({"conv.weight": w, "conv.bias": torch.zeros(4)})
    np.testing.assert_array_equal(net.state_dict()["conv.weight"], w.detach().numpy())
