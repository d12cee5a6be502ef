"""The built-in passes in a pipeline: default order, requires/runs_after, IR dumps, and what happens when
an in-process plugin (register_pass) raises, breaks the graph or changes the numbers."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import convc
from convc.compiler import optimize
from convc.dsl import Network
from convc.errors import OptionError, PassError, PluginError
from convc.ir import Graph, Node
from convc.pass_manager import (PassContext, available_passes, convc_pass, register_pass, resolve_pipeline,
                                unregister_pass)
from convc.types import TensorType
from pass_check import assert_same_outputs, seeded_inputs

# The NumPy backend's pipeline, every built-in pass (fuse_input_scale is NumPy's and Triton's,
# winograd_weights NumPy's).
BUILT_IN = ["eliminate_dropout", "eliminate_identity", "fold_constants", "fuse_silu", "dce", "fold_bn",
            "fold_channel_scale", "fuse_epilogue", "choose_conv_algo", "fuse_input_scale", "winograd_weights"]
EVERY_PASS = BUILT_IN


@pytest.fixture
def plugins() -> Iterator[list[str]]:
    """Names registered by the test; unregistered afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        unregister_pass(n)


def add_plugin(names: list[str], name: str, fn: object, **meta: object) -> None:
    register_pass(convc_pass(name, opt_level=99, **meta)(fn))  # type: ignore[arg-type]
    names.append(name)


def cnn() -> Network:
    net = Network("cnn")
    x = net.input((1, 3, 8, 8))
    y = net.dropout(net.relu(net.batch_norm(net.conv2d(x, 4, 3, padding=1, name="conv1"), name="bn1")))
    net.output(net.linear(net.flatten(net.conv2d(y, 4, 3, name="conv2")), 3, name="fc"))
    net.randomize_batch_norm(1)
    return net


def test_built_in_passes_come_from_convc_and_run_in_the_documented_order() -> None:
    registry = available_passes()
    assert all(registry[n].info.origin == "convc" for n in EVERY_PASS)
    assert [p.name for p in resolve_pipeline(1, registry=registry)] == BUILT_IN[:7]
    assert [p.name for p in resolve_pipeline(2, registry=registry)] == EVERY_PASS
    # A hand-written list in any order is put back in dependency order.
    shuffled = resolve_pipeline(2, passes=list(reversed(EVERY_PASS)), registry=registry)
    assert [p.name for p in shuffled] == EVERY_PASS
    for name in EVERY_PASS:
        doc = sys.modules[registry[name].fn.__module__].__doc__
        assert doc and "->" in doc.splitlines()[0], f"{name}: module docstring must open with the rewrite"


def test_runs_after_and_requires_order_plugins(plugins: list[str]) -> None:
    add_plugin(plugins, "late", lambda g, ctx: False, runs_after=("fuse_epilogue",))
    add_plugin(plugins, "needs_late", lambda g, ctx: False, requires=("late",))
    order = [p.name for p in resolve_pipeline(2, passes=["+needs_late", "+late"])]
    assert order.index("late") > order.index("fuse_epilogue")
    assert order.index("needs_late") > order.index("late")


def test_a_missing_requirement_and_a_cycle_are_pass_errors(plugins: list[str]) -> None:
    add_plugin(plugins, "needs_fold", lambda g, ctx: False, requires=("fold_bn",))
    with pytest.raises(PassError, match="'needs_fold' requires fold_bn, which the pipeline does not include"):
        resolve_pipeline(2, passes=["+needs_fold"], disable=["fold_bn"])
    add_plugin(plugins, "chicken", lambda g, ctx: False, runs_after=("egg",))
    add_plugin(plugins, "egg", lambda g, ctx: False, runs_after=("chicken",))
    with pytest.raises(PassError, match="cycle among: chicken, egg"):
        resolve_pipeline(2, passes=["chicken", "egg"])


def test_dump_ir_writes_the_graph_after_every_pass(tmp_path: Path) -> None:
    optimize(cnn(), dump_ir=tmp_path, check_numerics=False)
    stems = sorted(p.stem for p in tmp_path.glob("*.txt"))
    assert stems == ["00_input"] + [f"{i:02d}_{n}" for i, n in enumerate(BUILT_IN, 1)]
    assert sorted(p.stem for p in tmp_path.glob("*.dot")) == stems
    assert "batch_norm(" in (tmp_path / "00_input.txt").read_text()
    folded = (tmp_path / "06_fold_bn.txt").read_text()
    assert "batch_norm(" not in folded and "dropout(" not in folded and "relu(" in folded
    assert "relu(" not in (tmp_path / "08_fuse_epilogue.txt").read_text()
    assert "algo=" in (tmp_path / "09_choose_conv_algo.txt").read_text()


def test_the_full_pipeline_with_numerics_checked_after_every_pass() -> None:
    net = cnn()
    model = convc.compile(net, dtype="float32", check_numerics=True)
    assert [r.name for r in model.pass_records] == BUILT_IN
    assert all(r.error is None or r.error < 1e-6 for r in model.pass_records)
    x = seeded_inputs(net.graph)[0]
    expected = convc.compile(net, opt_level=0, dtype="float64").run(x)[0]
    np.testing.assert_allclose(model.run(x)[0], expected, rtol=1e-4, atol=1e-5)


def test_a_plugin_that_raises_is_a_plugin_error_naming_it(plugins: list[str]) -> None:
    def explode(g: Graph, ctx: PassContext) -> bool:
        raise KeyError("no such layer")

    add_plugin(plugins, "explode", explode)
    with pytest.raises(PluginError, match=r"pass 'explode' from package '<script>' raised KeyError.*"
                                          r"--disable explode"):
        optimize(cnn(), passes=["+explode"])
    # Added and disabled at once is a contradiction, said as such rather than resolved silently.
    with pytest.raises(OptionError, match="explode named in both --passes and --disable"):
        optimize(cnn(), passes=["+explode"], disable=["explode"])
    _, _, manager = optimize(cnn(), disable=["explode"])  # disabled, the rest of the pipeline runs
    assert [r.name for r in manager.records] == BUILT_IN


def test_a_plugin_that_breaks_the_graph_is_named_with_its_node_and_the_passes_before(
        plugins: list[str]) -> None:
    def dangle(g: Graph, ctx: PassContext) -> bool:
        fc = g.node("fc")
        g.replace_node(fc.replace(inputs=("nowhere",) + fc.inputs[1:]))
        return True

    add_plugin(plugins, "dangle", dangle, runs_after=("fold_channel_scale",))
    with pytest.raises(PassError, match=r"pass 'dangle' \(package '<script>'\) left a broken graph: "
                                        r"node 'fc': input %nowhere has no producer; passes run before "
                                        r"it: eliminate_dropout, eliminate_identity, fold_constants, "
                                        r"fuse_silu, dce, fold_bn, fold_channel_scale$"):
        optimize(cnn(), opt_level=1, passes=["+dangle"])


def test_a_plugin_that_changes_the_numbers_is_caught_at_the_first_differing_node(plugins: list[str]) -> None:
    def scale_conv2(g: Graph, ctx: PassContext) -> bool:
        w = g.param_input(g.node("conv2"), "weight")
        g.params[w] = g.params[w] * 1.01
        return True

    add_plugin(plugins, "scale_conv2", scale_conv2, runs_after=("fuse_epilogue",))
    with pytest.raises(PassError, match=r"pass 'scale_conv2' \(package '<script>'\) changed the "
                                        r"result: relative error .* first differing node 'conv2'.*"
                                        r"passes run before it: .*fuse_epilogue"):
        optimize(cnn(), passes=["+scale_conv2"])
    # Not checked when the user turns the check off.
    optimize(cnn(), passes=["+scale_conv2"], check_numerics=False)


def test_a_plugin_that_rewrites_correctly_passes_the_check(plugins: list[str]) -> None:
    def double_relu(g: Graph, ctx: PassContext) -> bool:
        """relu(x) -> relu(relu(x)): harmless, so the check must let it through."""
        relu = g.nodes("relu")[0]
        g.insert_after(relu.name, Node(g.fresh_name("again"), "relu", (relu.name,), {}, relu.type))
        again = g.nodes("relu")[-1]
        for user in g.users(relu.name):
            if user.name != again.name:
                inputs = tuple(again.name if i == relu.name else i for i in user.inputs)
                g.replace_node(user.replace(inputs=inputs))
        return True

    add_plugin(plugins, "double_relu", double_relu)
    before = cnn()
    g, _, manager = optimize(before, opt_level=1, passes=["+double_relu"])
    assert manager.records[-1].name == "double_relu" and manager.records[-1].error is not None
    assert len(g.nodes("relu")) == 2
    assert_same_outputs(before.graph, g, "float32")


def test_cleanup_then_fold_reach_a_bn_hidden_behind_identity_and_dropout() -> None:
    g = Graph("hidden")
    t = TensorType((1, 2, 4, 4))
    g.add(Node("x", "input", (), {"shape": t.shape, "dtype": "float32"}, t))
    net_params = {"w": np.ones((2, 2, 1, 1), np.float32)}
    g.add_param("w", net_params["w"])
    g.add(Node("conv", "conv2d", ("x", "w"), {"out_channels": 2, "kernel": (1, 1), "stride": (1, 1),
                                              "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1,
                                              "bias": False, "algo": None, "epilogue": ()}, t))
    g.add(Node("id", "identity", ("conv",), {}, t))
    g.add(Node("drop", "dropout", ("id",), {"p": 0.5}, t))
    for slot, value in (("gamma", 2.0), ("beta", 0.5), ("mean", 0.25), ("var", 3.0)):
        g.add_param(slot, np.full(2, value, np.float32))
    g.add(Node("bn", "batch_norm", ("drop", "gamma", "beta", "mean", "var"), {"eps": 1.0}, t))
    g.outputs = ["bn"]
    out, _, _ = optimize(g, opt_level=1, check_numerics=True, dtype="float64")
    assert [n.op for n in out.nodes() if n.op not in ("param", "input")] == ["conv2d"]
    # Worked by hand: with s = x[0] + x[1] (the all-ones 1x1 conv), y = (s - 0.25) * 2 / sqrt(3 + 1) + 0.5
    # = s + 0.25 in both output channels.
    x = np.arange(32, dtype=np.float64).reshape(1, 2, 4, 4)
    y = convc.compile(out, dtype="float64", opt_level=0).run(x)[0]
    np.testing.assert_allclose(y, np.broadcast_to(x.sum(axis=1, keepdims=True) + 0.25, (1, 2, 4, 4)))
