"""The Triton depthwise conv kernel (backends/triton/conv_depthwise.py) on the CPU interpreter against the
NumPy backend in float64: strides, dilation, asymmetric padding, channel multipliers, 1D/3D, fused
epilogues, half precision, NaN propagation; algo=None picks it; and its sm_90 build has no spills."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_triton_conv import conv_net
from triton_check import check, compile_triton, random_inputs, reference

from convc.dsl import Network
from convc.errors import BackendError

pytestmark = pytest.mark.usefixtures("small_blocks")

CASES: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {
    "3x3": ((2, 24, 7, 6), dict(out_channels=24, kernel=3, padding=1)),
    "stride2_mult2": ((1, 8, 9, 9), dict(out_channels=16, kernel=3, stride=2, padding=1, groups=8)),
    "7x7_dilated_asym": ((1, 5, 11, 10), dict(out_channels=5, kernel=(7, 3), padding=((3, 2), (0, 4)),
                                                dilation=(1, 2))),
    "conv1d": ((2, 6, 15), dict(out_channels=12, kernel=5, stride=2, padding=((2, 1),))),
    "conv3d": ((1, 4, 4, 5, 5), dict(out_channels=4, kernel=3, stride=(1, 2, 2), padding=1)),
}


def _kw(shape: tuple[int, ...], kw: dict[str, Any]) -> dict[str, Any]:
    return {"groups": shape[1], **kw}


@pytest.mark.parametrize("case", CASES)
def test_depthwise_geometries(case: str) -> None:
    shape, kw = CASES[case]
    net = conv_net(shape, _kw(shape, kw), "depthwise")
    assert [launch.name for launch in compile_triton(net).launches] == ["conv_depthwise_kernel"]
    check(net, "float32")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_depthwise_half_precision(dtype: str) -> None:
    shape, kw = CASES["stride2_mult2"]
    check(conv_net(shape, _kw(shape, kw), "depthwise"), dtype)


def test_depthwise_fused_epilogue_and_default_choice() -> None:
    """algo=None picks depthwise for a groups == C layer; bias + hardswish + residual add are fused."""
    net = Network("dw", seed=4)
    x = net.input((1, 16, 6, 6))
    y = net.conv2d(x, 16, 3, padding=1, groups=16)
    net.output(net.add(net.hardswish(y), x))
    import convc

    model = convc.compile(net, backend="triton", dtype="float32", device="cpu")
    assert [launch.name for launch in model.launches] == ["conv_depthwise_kernel"]
    xs = random_inputs(net)
    np.testing.assert_allclose(model.run(*xs)[0], reference(net, *xs)[0], rtol=1e-5, atol=1e-5)


def test_nan_propagates_to_the_outputs_that_read_it() -> None:
    shape, kw = CASES["3x3"]
    net = conv_net(shape, _kw(shape, kw), "depthwise")
    xs = random_inputs(net)
    xs[0][1, 3, 2, 2] = np.nan
    out = compile_triton(net).run(*xs)[0]
    expected = reference(net, *xs)[0]
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out).sum() == 9


def test_a_dense_conv_is_refused_by_name() -> None:
    net = conv_net((1, 8, 6, 6), dict(out_channels=8, kernel=3, groups=2), "depthwise")
    with pytest.raises(BackendError, match="'depthwise' needs groups equal to the 8 input channels"):
        compile_triton(net)


SM90_SCRIPT = """
import json, convc
from convc.dsl import Network
from convc.backends.triton.static_report import static_report
from convc.backends.triton.targets import GPU_TARGETS
net = Network("dw", seed=0)
x = net.input((64, 96, 28, 28))
y = net.relu(net.conv2d(x, 96, 3, padding=1, groups=96))
y = net.conv2d(y, 96, 7, padding=3, groups=96)
net.output(net.conv2d(y, 192, 5, stride=2, padding=2, groups=96))
rows = []
for dtype in ("float16", "float32"):
    model = convc.compile(net, backend="triton", dtype=dtype, target="sm_90")
    rows += static_report(model, GPU_TARGETS["sm_90"])["kernels"]
print(json.dumps([[r["function"], r["spills"], r["registers"], r["ctas_per_sm"]] for r in rows]))
"""


@pytest.mark.slow
def test_sm90_depthwise_kernels_have_no_spills(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CONVC_CACHE_DIR"] = str(tmp_path)  # a fresh plan cache: the modelled choice, not a replayed one
    done = subprocess.run([sys.executable, "-c", SM90_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r[0] for r in rows] == ["conv_depthwise_kernel"] * 6
    assert all(spills == 0 and ctas >= 2 for _, spills, _, ctas in rows), rows
