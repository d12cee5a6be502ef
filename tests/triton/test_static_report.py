"""The static kernel report (`convc compile ... --target sm_90 --emit DIR`): occupancy arithmetic against
hand-worked values, the TTGIR loop reader on a written listing, and the real command on a small model
(run without TRITON_INTERPRET in its own process) checked against ptxas's own resource report."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convc.backends.triton.aot import loop_structure
from convc.backends.triton.targets import GPU_TARGETS, gpu_target
from convc.errors import OptionError

NEEDS_INTERPRETER = False
SM90 = GPU_TARGETS["sm_90"]


@pytest.mark.parametrize("registers, warps, shared, expected", [
    # 168 regs -> 5376 per warp (21 units of 256); 4 warps -> 21504 per CTA; 65536 // 21504 = 3
    (168, 4, 0, 3),
    # 128 regs x 4 warps = 16384 per CTA -> 4 by registers; 64 KB + 1 KB reserved -> 228 KB // 65 KB = 3
    (128, 4, 64 * 1024, 3),
    # 32 regs x 4 warps = 4096 -> 16 by registers, 64 warps // 4 = 16
    (32, 4, 0, 16),
    # 16 regs x 1 warp: 128 by registers, 64 by warps, capped at 32 CTAs
    (16, 1, 0, 32),
    # 255 regs (rounded to 256) x 8 warps = 65536: exactly one CTA
    (255, 8, 0, 1),
    # more shared memory than one CTA may have: the kernel cannot launch
    (32, 4, 228 * 1024, 0),
])
def test_ctas_per_sm_on_hopper(registers: int, warps: int, shared: int, expected: int) -> None:
    assert SM90.ctas_per_sm(registers, warps, shared) == expected


def test_waves_and_target_names() -> None:
    assert SM90.waves(ctas=264, ctas_per_sm=1) == pytest.approx(2.0)
    assert SM90.waves(ctas=66, ctas_per_sm=2) == pytest.approx(0.25)
    assert GPU_TARGETS["sm_80"].waves(ctas=108, ctas_per_sm=1) == pytest.approx(1.0)
    assert gpu_target("sm90") is SM90 and gpu_target("90") is SM90
    with pytest.raises(OptionError, match="sm_90"):
        gpu_target("sm_75")


TTGIR = """
tt.func public @k(%a: i32) attributes {noinline = false} {
  %0 = scf.for %i = %c0 to %n step %c1 iter_args(%x = %c) -> (i32) : i32 {
    %1 = scf.for %j = %c0 to %m step %c1 iter_args(%y = %x) -> (i32) : i32 {
      %t = ttg.async_copy_global_to_local %p, %s {attr = 1} : tensor<64x!tt.ptr<f16>> loc(#loc1)
      scf.yield %y : i32
    } {tt.num_stages = 3 : i32}
    scf.yield %1 : i32
  }
  %2 = scf.for %k = %c0 to %n step %c1 iter_args(%z = %0) -> (i32) : i32 {
    %3 = ttng.async_tma_copy_global_to_local %d[%k] %s : !tt.tensordesc<tensor<64x64xf16>>
    scf.yield %z : i32
  }
  scf.if %cond {
    %4 = arith.addi %a, %a : i32
  }
  tt.return
}
"""


def test_loop_structure_counts_pipelined_loops_and_their_depth() -> None:
    loops, pipelined, depth = loop_structure(TTGIR)
    assert (loops, pipelined, depth) == (3, 2, 2)  # the cp.async loop is nested in another one


def _ptxas_resources(ptx: Path) -> tuple[int, int]:
    """(registers, stack bytes) from ptxas -v on the emitted PTX: the assembler's own account."""
    from triton.backends.nvidia.compiler import get_ptxas

    arch = re.search(r"\.target\s+(sm_\w+)", ptx.read_text()).group(1)  # type: ignore[union-attr]
    ptxas = get_ptxas(int(re.sub(r"\D", "", arch))).path  # the assembler Triton uses for this target
    done = subprocess.run([ptxas, "-v", "-lineinfo", "--regAllocOptLevel=2", f"--gpu-name={arch}",
                           str(ptx), "-o", os.devnull], capture_output=True, text=True, check=True)
    registers = int(re.search(r"Used (\d+) registers", done.stderr).group(1))  # type: ignore[union-attr]
    stack = int(re.search(r"(\d+) bytes stack frame", done.stderr).group(1))  # type: ignore[union-attr]
    return registers, stack


def _compile_command(tmp_path: Path, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # TRITON_INTERPRET=1 stays set: the command itself reruns the compile in a process without it.
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    return subprocess.run([sys.executable, "-m", "convc.cli", "compile", "lenet5", "--backend", "triton",
                           "--dtype", "float16", "--batch", "64", "--target", target, *extra],
                          env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)


@pytest.mark.slow
def test_compile_for_sm90_emits_sources_ptx_cubins_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "emit"
    done = _compile_command(tmp_path, "sm_90", "--emit", str(out), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    written = json.loads((out / "report.json").read_text())
    assert printed == written and written["target"] == "sm_90" and written["sms"] == 132
    kernels = written["kernels"]
    assert {k["layer"] for k in kernels} >= {"conv1", "conv2", "fc1", "fc2", "fc3"}
    for k in kernels:
        for field in ("kernel", "layer", "config", "registers", "spills", "shared_memory", "ctas_per_sm",
                      "warps_per_sm", "pipelined_loops", "wgmma", "tma", "grid", "waves"):
            assert field in k, field
        assert k["ctas_per_sm"] == SM90.ctas_per_sm(k["registers"], k["num_warps"], k["shared_memory"])
        assert k["waves"] == pytest.approx(k["ctas"] / (132 * k["ctas_per_sm"]), rel=1e-2)
        base = out / "kernels" / k["kernel"]
        assert base.with_suffix(".cubin").stat().st_size > 0
        assert _ptxas_resources(base.with_suffix(".ptx")) == (k["registers"], k["spills"])
    assert (out / "report.txt").read_text().startswith("lenet5")
    # fc1 (400 -> 120 in fp16: 800- and 240-byte rows) reads both operands through TMA descriptors.
    fc1 = next(k for k in kernels if k["layer"] == "fc1" and k["function"] == "gemm_kernel")
    assert fc1["config"]["TMA"] == fc1["tma_modes"] == 3 and fc1["tma"] >= 2
    # Each kernel's source imports with triton alone (no convc) and holds the JIT function.
    one = kernels[0]
    spec = importlib.util.spec_from_file_location("emitted", out / "kernels" / f"{one['kernel']}.py")
    assert spec is not None and spec.loader is not None
    source = (out / "kernels" / f"{one['kernel']}.py").read_text()
    assert "convc" not in source.split('"""', 2)[2]  # no import of convc after the docstring
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kernel = getattr(module, one["function"])  # a JIT (or, interpreted, Python) function of that name
    assert getattr(kernel, "fn", kernel).__name__ == one["function"]


@pytest.mark.slow
def test_sm80_has_tensor_cores_but_no_wgmma(tmp_path: Path) -> None:
    done = _compile_command(tmp_path, "sm_80", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["target"] == "sm_80" and report["sms"] == 108
    assert not any(k["wgmma"] for k in report["kernels"])
    fc1 = next(k for k in report["kernels"] if k["layer"] == "fc1")
    assert fc1["mma"]  # an fp16 GEMM on sm_80 uses mma.sync
    # The same TMA configuration compiles for sm_80: Triton turns the descriptors back into pointer loads.
    assert fc1["config"]["TMA"] == 3 and not any(k["tma"] for k in report["kernels"])


def test_a_target_model_cannot_run(tmp_path: Path) -> None:
    import convc
    import convc.models
    from convc.errors import BackendError

    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    net = convc.models.get("lenet5")
    model = convc.compile(net, backend="triton", dtype="float16", target="sm_90")
    assert model.device == "meta" and model.launches  # type: ignore[attr-defined]
    assert model.plan.device == "h100"  # the plan was made with the sm_90 target's cost profile
    with pytest.raises(BackendError, match="ahead of time for sm_90"):
        model.run(*[__import__("numpy").zeros((1, 1, 32, 32), "float32")])
