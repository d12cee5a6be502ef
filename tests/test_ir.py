"""The IR: derived DiGraph, stable order, editing methods, and a verifier that names node and fault."""
from __future__ import annotations

import numpy as np
import pytest

import convc
from convc.errors import GraphError
from convc.ir import Graph, Node
from convc.types import TensorType


def residual_net() -> convc.Network:
    net = convc.Network("res")
    x = net.input((1, 4, 8, 8))
    y = net.conv2d(x, 4, 3, padding=1, name="conv")
    y = net.add(y, x, name="sum")
    net.output(net.relu(y, name="out"))
    return net


def test_add_of_the_same_value_keeps_both_operands() -> None:
    net = convc.Network()
    x = net.input((1, 2, 3, 3))
    y = net.add(x, x, name="double")
    net.output(y)
    g = net.graph
    g.verify()
    assert g.node("double").inputs == ("x", "x")
    assert g.digraph().edges["x", "double"]["positions"] == [0, 1]
    assert [u.name for u in g.users("x")] == ["double"]


def test_stable_topological_order_and_queries() -> None:
    g = residual_net().graph
    order = [n.name for n in g.nodes() if n.op != "param"]
    assert order == ["x", "conv", "sum", "out"]
    assert [n.name for n in g.nodes("conv2d")] == ["conv"]
    assert g.producer("sum").op == "add"
    assert {u.name for u in g.users("x")} == {"conv", "sum"}
    assert g.param_input(g.node("conv"), "bias") == "conv.bias"
    assert g.activation_inputs(g.node("conv")) == ("x",)


def test_replace_all_uses_erase_and_insert_after() -> None:
    g = residual_net().graph
    g.insert_after("conv", Node("act", "relu", ("conv",), {}, g.node("conv").type))
    assert g.replace_all_uses("conv", "act") == 1  # 'sum' now reads 'act'; 'act' itself is untouched
    assert g.node("sum").inputs == ("act", "x")
    assert g.resolve("conv") == "act"
    g.verify()
    with pytest.raises(GraphError, match="cannot erase 'act': still read by \\['sum'\\]"):
        g.erase("act")
    g.replace_all_uses("sum", "act")
    g.erase("sum")
    assert [n.name for n in g.nodes() if n.op != "param"] == ["x", "conv", "act", "out"]
    g.verify()


def test_verify_catches_each_fault_by_node() -> None:
    base = residual_net().graph

    def broken(edit) -> str:  # noqa: ANN001
        g = base.copy()
        edit(g)
        with pytest.raises(GraphError) as e:
            g.verify()
        return str(e.value)

    conv = base.node("conv")
    assert "node 'conv' (conv2d): type f32[1,5,8,8] does not match the inferred f32[1,4,8,8]" in broken(
        lambda g: g.replace_node(conv.replace(type=TensorType((1, 5, 8, 8)))))
    assert "node 'conv' (conv2d): attribute groups=0 is not valid" in broken(
        lambda g: g.replace_node(conv.replace(attrs={**conv.attrs, "groups": 0})))
    assert "node 'conv' (conv2d): attributes" in broken(
        lambda g: g.replace_node(conv.replace(attrs={k: v for k, v in conv.attrs.items() if k != "algo"})))
    assert "node 'conv' (conv2d): has 2 operands, expected 1 inputs and 2 parameters" in broken(
        lambda g: g.replace_node(conv.replace(inputs=("x", "conv.weight"))))
    assert "node 'sum': input %nothing has no producer" in broken(
        lambda g: g.replace_node(g.node("sum").replace(inputs=("conv", "nothing"))))
    assert "node 'conv.weight' (param): parameter has shape (4, 4, 3, 1)" in broken(
        lambda g: g.params.__setitem__("conv.weight", np.zeros((4, 4, 3, 1), np.float32)))
    assert "node 'conv.bias' (param): no parameter array of that name" in broken(
        lambda g: g.params.pop("conv.bias"))
    assert "node 'conv' (conv2d): weight has shape (4, 4, 3, 3, 1)" in broken(
        lambda g: (g.params.__setitem__("conv.weight", np.zeros((4, 4, 3, 3, 1), np.float32)),
                   g.replace_node(g.node("conv.weight").replace(type=TensorType((4, 4, 3, 3, 1))))))
    assert "node 'conv' (conv2d): type f32[1,4,8,8] does not match the inferred f64[1,4,8,8]" in broken(
        lambda g: g.replace_node(g.node("x").replace(attrs={"shape": (1, 4, 8, 8), "dtype": "float64"},
                                                     type=TensorType((1, 4, 8, 8), "float64"))))
    assert "has a cycle" in broken(lambda g: g.replace_node(conv.replace(inputs=("out",) + conv.inputs[1:])))
    assert "has no outputs" in broken(lambda g: setattr(g, "outputs", []))
    assert "unknown op 'swizzle'" in broken(lambda g: g.replace_node(g.node("out").replace(op="swizzle")))
    assert "parameters without a param node: stray" in broken(
        lambda g: g.params.__setitem__("stray", np.zeros(1)))


def test_duplicate_node_names_are_refused() -> None:
    g = Graph("g")
    g.add(Node("x", "input", (), {"shape": (1,), "dtype": "float32"}, TensorType((1,))))
    with pytest.raises(GraphError, match="already has a node named 'x'"):
        g.add(Node("x", "relu", ("x",), {}, TensorType((1,))))
