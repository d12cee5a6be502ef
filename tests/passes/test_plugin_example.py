"""The example third-party plugin (examples/convc-plugin-example): installed into the venv, found
through its entry point with its package as origin, listed by `convc passes`, and run by compile."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pass_check import assert_same_outputs, op_counts

import convc
from convc.compiler import optimize
from convc.dsl import Network
from convc.pass_manager import available_passes, resolve_pipeline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "convc-plugin-example"
PACKAGE = "convc-plugin-example"


@pytest.fixture(scope="module")
def installed(install_example: Callable, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Installed with pip the way a user would (a regular install, so this very process can import it),
    into a folder of this test's own."""
    with install_example(EXAMPLE, tmp_path_factory.mktemp("plugin")):
        yield
    sys.modules.pop("convc_plugin_example", None)


def head_net() -> Network:
    """A classifier head: global pool to 1x1, a 1x1 conv (+ ReLU), flatten: the plugin's pattern."""
    net = Network("head", seed=3)
    x = net.input((2, 6, 5, 5))
    y = net.global_avg_pool(net.conv2d(x, 8, 3, padding=1, name="features"))
    y = net.relu(net.conv2d(y, 4, 1, name="classifier"))
    net.output(net.flatten(y, name="logits"))
    return net


def test_available_passes_lists_it_with_its_package_as_origin(installed: None) -> None:
    p = available_passes()["conv1x1_to_linear"]
    assert p.info.origin == PACKAGE and p.info.opt_level == 99
    assert p.info.description.startswith("conv2d 1x1 over a 1x1 map")


def test_convc_passes_lists_it(installed: None) -> None:
    exe = Path(sys.executable).with_name("convc")
    if not exe.exists():
        pytest.skip("no `convc` script next to this Python")
    out = subprocess.run([str(exe), "passes", "--json"], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["conv1x1_to_linear"]["package"] == PACKAGE
    assert rows["conv1x1_to_linear"]["default_pipeline"] == "not by default"
    assert rows["fold_bn"]["package"] == "convc"


def test_compile_runs_it_when_asked_and_the_result_is_unchanged(installed: None) -> None:
    net = head_net()
    g, _, manager = optimize(net, dtype="float32", passes=["+conv1x1_to_linear"])  # numerics checked
    record = next(r for r in manager.records if r.name == "conv1x1_to_linear")
    assert record.name == "conv1x1_to_linear" and record.origin == PACKAGE and record.changed
    assert record.error is not None and record.error < 1e-6
    counts = op_counts(g)
    assert counts["conv2d"] == 1 and counts["linear"] == 1 and counts["relu"] == 0
    fc = g.node("classifier")  # the layer keeps its name
    assert fc.op == "linear" and fc.attrs["epilogue"] == (("relu",),) and g.outputs == ["classifier"]
    np.testing.assert_array_equal(g.params[g.param_input(fc, "weight")],
                                  net.graph.params["classifier.weight"].reshape(4, 8))
    assert_same_outputs(net.graph, g, "float32")
    model = convc.compile(net, passes=["+conv1x1_to_linear"], dtype="float64")
    assert model.graph.node("classifier").op == "linear"
    assert_same_outputs(net.graph, model.graph, "float32")


def test_it_is_not_in_the_default_pipeline(installed: None) -> None:
    g, _, manager = optimize(head_net(), check_numerics=False)
    assert "conv1x1_to_linear" not in [r.name for r in manager.records]
    assert g.node("classifier").op == "conv2d"


def test_both_passes_run_before_the_algorithm_choice(installed: None) -> None:
    for name in ("fc_to_conv", "conv1x1_to_linear"):
        order = [p.name for p in resolve_pipeline(2, passes=[f"+{name}"])]
        assert order.index(name) < order.index("choose_conv_algo"), order
        assert order.index(name) > order.index("fold_bn")
    order = [p.name for p in resolve_pipeline(2, passes=["+conv1x1_to_linear"])]
    assert order.index("fuse_epilogue") < order.index("conv1x1_to_linear")


@pytest.mark.parametrize("model", ["lenet5", "alexnet"])
def test_fc_to_conv_changes_zoo_models_and_keeps_their_outputs(installed: None, model: str) -> None:
    net = convc.models.get(model)
    g, ctx, manager = optimize(net, dtype="float32", passes=["+fc_to_conv"])  # numerics checked
    record = next(r for r in manager.records if r.name == "fc_to_conv")
    assert record.changed and record.origin == PACKAGE and record.error is not None
    fc1 = g.node("fc1" if model == "lenet5" else "classifier.1")
    weight = net.graph.params[f"{fc1.name}.weight"]
    assert fc1.op == "conv2d" and fc1.attrs["algo"] is not None  # chosen after it, like every conv
    c, h, w = g.node(fc1.inputs[0]).type.shape[1:]
    np.testing.assert_array_equal(g.params[fc1.inputs[1]], weight.reshape(-1, c, h, w))
    assert fc1.name in {lp.layer for lp in ctx.results["plan"].layers}
    assert_same_outputs(net.graph, g, "float32")


def test_the_readme_command_reports_a_change(installed: None) -> None:
    exe = Path(sys.executable).with_name("convc")
    if not exe.exists():
        pytest.skip("no `convc` script next to this Python")
    readme = (EXAMPLE / "README.md").read_text()
    command = next(line.split("#")[0].split() for line in readme.splitlines() if "--passes +" in line)
    assert command[:2] == ["convc", "compile"]
    out = subprocess.run([str(exe), *command[1:]], check=True, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "120"}).stdout
    name = command[command.index("--passes") + 1].lstrip("+")
    row = next(line.split() for line in out.splitlines() if line.startswith(name))
    assert row[1] == PACKAGE and "yes" in row and float(row[-1]) < 1e-5


def test_it_leaves_a_1x1_conv_over_a_larger_map_alone(installed: None) -> None:
    net = Network("wide")
    y = net.conv2d(net.input((1, 3, 4, 4)), 2, 1, name="pointwise")
    net.output(net.flatten(y))
    g, _, manager = optimize(net, passes=["conv1x1_to_linear"])
    assert not manager.records[-1].changed and g.node("pointwise").op == "conv2d"
