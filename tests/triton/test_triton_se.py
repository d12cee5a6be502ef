"""Squeeze-excitation on the Triton backend (CPU interpreter): the multiply x * s feeding a 1x1 conv is no
kernel of its own but the GEMM's A-tile prologue (passes/fuse_input_scale.py, gemm.py A_SCALE), checked
against the NumPy backend in float64 on the unfused graph and MobileNet v3 small against torch float64."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from triton_check import random_inputs, reference

import convc
from convc.dsl import Network
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.usefixtures("small_blocks")


def mbconv(channels: int = 24, expanded: int = 72, residual: bool = True, size: int = 6) -> Network:
    """EfficientNet-B0's MBConv: 1x1 expand + SiLU, depthwise 3x3 + SiLU, SE (pool, 1x1, SiLU, 1x1,
    sigmoid), x * s, 1x1 project (+ the block's input)."""
    net = Network("mbconv", seed=5)
    x = net.input((2, channels, size, size))
    h = net.silu(net.conv2d(x, expanded, 1, name="expand"))
    h = net.silu(net.conv2d(h, expanded, 3, padding=1, groups=expanded, name="dw"))
    s = net.global_avg_pool(h)
    s = net.silu(net.conv2d(s, 8, 1, name="squeeze"))
    s = net.sigmoid(net.conv2d(s, expanded, 1, name="excite"))
    y = net.conv2d(net.mul(h, s), channels, 1, name="project")
    net.output(net.add(y, x) if residual else y)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
def test_se_multiply_runs_inside_the_projection_gemm(residual: bool, dtype: str) -> None:
    net = mbconv(residual=residual)
    model = convc.compile(net, backend="triton", dtype=dtype, device="cpu", opt_level=2)
    assert not model.graph.nodes("mul")  # type: ignore[attr-defined]
    assert model.graph.node("project").attrs["input_scale"]  # type: ignore[attr-defined]
    [project] = [launch for launch in model.launches if launch.node == "project"]  # type: ignore[attr-defined]
    assert project.name == "gemm_kernel" and project.meta["A_SCALE"]
    assert not any("mul" in launch.name or "multiply" in launch.name
                   for launch in model.launches)  # type: ignore[attr-defined]
    xs = random_inputs(net)
    out = model.run(*xs)[0]
    err = rel_err(out, reference(net, *xs)[0])
    assert err <= budget(dtype, whole_model=True), err


def test_nan_in_the_scale_reaches_only_its_image() -> None:
    net = mbconv(residual=False)
    model = convc.compile(net, backend="triton", dtype="float32", device="cpu", opt_level=2)
    xs = random_inputs(net)
    xs[0][1, 3, 2, 2] = np.nan  # image 1 only: its pooled SE gate, so all of image 1, is NaN
    out = model.run(*xs)[0]
    assert np.isnan(out[1]).all() and not np.isnan(out[0]).any()


@pytest.mark.slow
def test_mobilenet_v3_small_has_no_standalone_multiply_and_matches_torch() -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "models"))  # the zoo's model builder
    zoo = pytest.importorskip("torchvision_zoo")
    torch = zoo.torch
    model, x = zoo.build("mobilenet_v3_small")
    net = convc.from_torch(model, x)
    assert len(net.graph.nodes("mul")) == 9  # one SE block in 9 of its 11 inverted residuals
    compiled = convc.compile(net, backend="triton", dtype="float32", device="cpu", opt_level=2)
    graph = compiled.graph  # type: ignore[attr-defined]
    assert not graph.nodes("mul")
    assert sum(bool(n.attrs.get("input_scale")) for n in graph.nodes("conv2d")) == 9
    y = compiled.run(x.numpy())[0]
    model.double()
    with torch.no_grad():
        expected = model(x.double()).numpy()
    assert rel_err(y, expected) <= budget("float32", whole_model=True)


SM90_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import convc
from test_triton_se import mbconv
from convc.backends.triton.static_report import static_report
from convc.backends.triton.targets import GPU_TARGETS
rows = []
for dtype in ("float16", "float32"):
    net = mbconv(channels=96, expanded=576, size=14)
    model = convc.compile(net, backend="triton", dtype=dtype, target="sm_90")
    rows += [r for r in static_report(model, GPU_TARGETS["sm_90"])["kernels"] if r["layer"] == "project"]
print(json.dumps([[r["function"], r["meta"].get("A_SCALE"), r["spills"], r["registers"]] for r in rows]))
"""


@pytest.mark.slow
def test_the_scaled_gemm_compiles_for_sm90_without_spills(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CONVC_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", SM90_SCRIPT, str(Path(__file__).parent)], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    gemms = [row for row in rows if row[0] == "gemm_kernel"]  # (and split-K's reduction, when it splits)
    assert len(gemms) == 2 and all(scaled for _, scaled, _, _ in gemms), rows
    assert all(spills == 0 for _, _, spills, _ in rows), rows
