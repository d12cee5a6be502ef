"""Plan files say what they were made for; another model, shape, dtype, backend or device is refused,
or re-measured with a warning when asked, never replayed silently."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from convc.passes.conv_algo import PlanMismatchError
from convc.passes.plan import Plan, structure_hash
from convc.passes.winograd_weights import winograd_weights

import convc
from convc.compiler import optimize
from convc.dsl import Network
from convc.errors import OptionError
from convc.pass_manager import PassContext


def net(size: int = 10, channels: int = 6, name: str = "plan") -> Network:
    n = Network(name)
    x = n.input((1, 3, size, size))
    y = n.relu(n.conv2d(x, channels, 3, padding=1, name="a"))
    n.output(n.conv2d(y, 6, 3, padding=1, name="b"))
    return n


def test_a_plan_records_model_shapes_dtype_backend_device_and_version(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    g, ctx, _ = optimize(net(), plan=path, check_numerics=False)
    saved = json.loads(path.read_text())
    assert saved["version"] == 2 and saved["model"] == "plan" and saved["input_shapes"] == [[1, 3, 10, 10]]
    assert (saved["dtype"], saved["backend"], saved["device"]) == ("float32", "numpy", "cpu")
    assert saved["convc_version"] == convc.__version__
    assert saved["model_hash"] == structure_hash(g) == ctx.results["plan"].model_hash
    # The hash ignores weights and chosen algorithms, not structure or shapes.
    assert structure_hash(net().graph) == structure_hash(net().graph)
    assert structure_hash(net(channels=5).graph) != structure_hash(net().graph)


def test_the_plan_hash_survives_the_compile_time_winograd_filter_transform() -> None:
    """winograd_weights runs after the plan is made and replaces a Winograd conv's weight by G g Gᵀ
    (renamed, (36, K, C)): the optimized graph must still hash as the plan recorded it, while a real
    change of structure still does not."""
    g = net().graph
    before = structure_hash(g)
    node = g["b"]
    g.replace_node(node.replace(attrs={**node.attrs, "algo": "winograd_4x4"}))
    assert winograd_weights(g, PassContext(backend="numpy", dtype="float32"))
    weight = g.param_input(g["b"], "weight")
    assert weight is not None and g.params[weight].shape == (36, 6, 6)
    assert structure_hash(g) == before
    assert structure_hash(net(channels=5).graph) != before


@pytest.mark.parametrize("other, dtype, backend, differs", [
    (lambda: net(size=12), "float32", "numpy", "input shapes 1x3x10x10 (this compile: 1x3x12x12)"),
    (net, "float64", "numpy", "dtype float32 (this compile: float64)"),
    (net, "float32", "torch", "backend numpy (this compile: torch)"),
    (lambda: net(channels=5), "float32", "numpy", "model structure"),
    (lambda: net(name="other"), "float32", "numpy", "model plan (this compile: other)"),
])
def test_a_plan_for_another_compile_is_refused_naming_the_difference(
        tmp_path: Path, other: object, dtype: str, backend: str, differs: str) -> None:
    path = tmp_path / "p.json"
    optimize(net(), plan=path, check_numerics=False)
    pattern = rf"--plan {re.escape(str(path))} was made for model 'plan'.*{re.escape(differs)}"
    with pytest.raises(PlanMismatchError, match=pattern):
        optimize(other(), backend=backend, dtype=dtype, plan=path, check_numerics=False)  # type: ignore


def test_a_plan_for_another_device_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    _, ctx, _ = optimize(net(), plan=path, check_numerics=False)
    from dataclasses import replace

    replace(ctx.results["plan"], device="h100").save(path)
    with pytest.raises(PlanMismatchError, match="device h100 \\(this compile: cpu\\)"):
        optimize(net(), plan=path, check_numerics=False)


def test_remeasure_warns_chooses_again_and_rewrites_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    optimize(net(), plan=path, check_numerics=False)
    with pytest.warns(UserWarning, match="input shapes .* choosing the algorithms again and rewriting"):
        _, ctx, _ = optimize(net(size=12), dtype="float64", plan=path, plan_mismatch="remeasure",
                             check_numerics=False)
    plan = ctx.results["plan"]
    assert all(lp.source != "plan file" for lp in plan.layers)
    assert Plan.from_json(path.read_text()) == plan and plan.input_shapes == ((1, 3, 12, 12),)
    with warnings.catch_warnings():  # now it fits: followed without a warning
        warnings.simplefilter("error")
        _, ctx, _ = optimize(net(size=12), dtype="float64", plan=path, check_numerics=False)
    assert {lp.source for lp in ctx.results["plan"].layers} == {"plan file"}


def test_an_old_plan_file_without_metadata_is_refused_or_remeasured(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "convc-plan", "version": 1, "backend": "numpy", "device": "cpu",
                                "dtype": "float32", "mode": "model", "layers": []}))
    with pytest.raises(OptionError, match="version 1, but this convc reads version 2: an older convc"):
        optimize(net(), plan=path, check_numerics=False)
    with pytest.warns(UserWarning, match="older convc"):
        optimize(net(), plan=path, plan_mismatch="remeasure", check_numerics=False)
    assert json.loads(path.read_text())["version"] == 2
    with pytest.raises(OptionError, match="plan_mismatch='sometimes'"):
        optimize(net(), plan=path, plan_mismatch="sometimes", check_numerics=False)


def test_cli_refuses_a_64x64_plan_on_a_larger_input_and_remeasures_when_asked(tmp_path: Path) -> None:
    convc_script = str(Path(sys.executable).parent / "convc")
    path = str(tmp_path / "lenet.json")
    made = subprocess.run([convc_script, "plan", "resnet18", "--input", "3,32,32", "--plan", path],
                          capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    out = subprocess.run([convc_script, "run", "resnet18", "--input", "3,64,64", "--dtype", "float64",
                          "--plan", path], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "input shapes 1x3x32x32 (this compile: 1x3x64x64)" in out.stderr
    assert "dtype float32 (this compile: float64)" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([convc_script, "plan", "resnet18", "--input", "3,64,64", "--plan", path,
                          "--plan-mismatch", "remeasure", "--json"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "rewriting" in out.stderr
    assert json.loads(out.stdout)["input_shapes"] == [[1, 3, 64, 64]]
