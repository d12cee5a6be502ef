"""eliminate_dropout, eliminate_identity, fold_constants and dce on small hand-built graphs."""
from __future__ import annotations

import numpy as np
import pytest

from convc.dsl import Network
from convc.ir import Graph, Node
from convc.types import TensorType
from pass_check import check_rewrite, run


def test_dropout_and_identity_disappear_and_their_readers_read_the_input() -> None:
    net = Network("drop")
    x = net.input((2, 3, 6, 6))
    y = net.dropout(net.relu(net.conv2d(x, 4, 3, name="conv")), p=0.3)
    y = net.dropout(y, p=0.1)  # a chain of two
    z = net.linear(net.flatten(y), 5, name="fc")
    net.output(net.dropout(z, name="last"))  # a dropout that is the graph output
    g, _ = check_rewrite(net.graph, ["eliminate_dropout"], expect={"dropout": 0, "relu": 1, "linear": 1})
    assert g.outputs == ["fc"]
    assert g.node("flatten").inputs == ("relu",)


def test_identity_is_bypassed() -> None:
    g = Graph("ident")
    t = TensorType((1, 4))
    g.add(Node("x", "input", (), {"shape": (1, 4), "dtype": "float32"}, t))
    g.add(Node("i1", "identity", ("x",), {}, t))
    g.add(Node("r", "relu", ("i1",), {}, t))
    g.add(Node("i2", "identity", ("r",), {}, t))
    g.outputs = ["i2"]
    out, _ = check_rewrite(g, ["eliminate_identity"], expect={"identity": 0, "relu": 1})
    assert out.outputs == ["r"] and out.node("r").inputs == ("x",)


def test_dce_removes_dead_branches_with_their_parameters_but_keeps_inputs() -> None:
    net = Network("dead")
    x = net.input((1, 3, 8, 8))
    unused = net.input((1, 2), name="unused")
    live = net.conv2d(x, 4, 3, name="live")
    dead = net.relu(net.conv2d(x, 4, 3, name="dead"))
    net.linear(net.flatten(dead), 3, name="dead_fc")
    net.output(live)
    g, _ = check_rewrite(net.graph, ["dce"], expect={"conv2d": 1, "relu": 0, "linear": 0, "flatten": 0})
    assert set(g.params) == {"live.weight", "live.bias"}
    assert [n.name for n in g.inputs] == ["x", "unused"]
    assert unused.name in g


def test_dce_on_a_clean_graph_reports_no_change() -> None:
    net = Network("clean")
    net.output(net.relu(net.input((1, 3))))
    from convc.compiler import optimize

    _, _, manager = optimize(net, passes=["dce"], check_numerics=False)
    assert [r.changed for r in manager.records] == [False]


def constant_graph() -> tuple[Graph, np.ndarray]:
    """out = x + sigmoid(p) * 1 where p is a parameter: sigmoid(p) depends on parameters only."""
    g = Graph("consts")
    t = TensorType((2, 3, 4, 4))
    p = np.random.default_rng(3).standard_normal(t.shape)
    g.add(Node("x", "input", (), {"shape": t.shape, "dtype": "float32"}, t))
    g.add_param("p", p.astype(np.float32))
    g.add(Node("sig", "sigmoid", ("p",), {}, t))
    g.add(Node("tanh_sig", "tanh", ("sig",), {}, t))
    g.add(Node("sum", "add", ("x", "tanh_sig"), {}, t))
    g.add(Node("out", "relu", ("sum",), {}, t))
    g.outputs = ["out"]
    return g, p


def test_fold_constants_evaluates_a_parameter_subgraph_once() -> None:
    g, p = constant_graph()
    out, _ = check_rewrite(g, ["fold_constants"], expect={"sigmoid": 0, "tanh": 0, "add": 1, "relu": 1})
    folded = out.node("sum").inputs[1]
    assert out.node(folded).op == "param" and "p" not in out.params
    # Independent reference: tanh(sigmoid(p)) written out in NumPy.
    np.testing.assert_allclose(out.params[folded], np.tanh(1 / (1 + np.exp(-p))), rtol=1e-6)
    assert out.params[folded].dtype == np.float64  # check_rewrite ran with float64 parameters


def test_fold_constants_keeps_the_parameter_dtype_and_leaves_activation_paths_alone() -> None:
    g, _ = constant_graph()
    from convc.compiler import optimize

    out, _, _ = optimize(g, passes=["fold_constants"], check_numerics=False)
    folded = out.node("sum").inputs[1]
    assert out.params[folded].dtype == np.float32
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(run(out, [x], "float32")[0], run(g, [x], "float64")[0], rtol=1e-5, atol=1e-6)


def test_fold_constants_on_a_graph_output_that_is_constant() -> None:
    g, _ = constant_graph()
    g.outputs = ["out", "sig"]
    out, _ = check_rewrite(g, ["fold_constants"], expect={"sigmoid": 0, "tanh": 0})
    assert out.node(out.outputs[1]).op == "param"


@pytest.mark.parametrize("passes", [["eliminate_dropout", "eliminate_identity", "fold_constants", "dce"]])
def test_cleanup_passes_change_nothing_without_work(passes: list[str]) -> None:
    net = Network("plain")
    x = net.input((1, 3, 5, 5))
    net.output(net.relu(net.conv2d(x, 2, 3, name="c")))
    from convc.compiler import optimize

    _, _, manager = optimize(net, passes=passes, check_numerics=True)
    assert not any(r.changed for r in manager.records)
