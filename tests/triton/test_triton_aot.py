"""Every kernel the backend emits passes the real Triton compiler for sm_90 (no GPU needed): the CPU
interpreter executes kernels as Python and accepts code that the compiler would reject. Every kernel
family is compiled, each variant without spills and within its register bound (aot_compile.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("aot_compile.py")
NEEDS_INTERPRETER = False  # the script compiles for sm_90 in its own process, GPU or not


def run_sm90_script(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs a compile-check script in its own process (no interpreter), skipping the test where this
    Triton install has no ptxas to assemble sm_90 code."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    if "ptxas" in output and ("not found" in output or "No such file" in output):
        pytest.skip("this Triton install has no ptxas to assemble sm_90 code")
    return done


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_every_kernel_compiles_for_hopper(dtype: str) -> None:
    done = run_sm90_script(SCRIPT, dtype)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "compiled" in done.stdout and ", 0 problems" in done.stdout, output[-4000:]
    assert "winograd_input_kernel: up to" in done.stdout and "window_pool_kernel: up to" in done.stdout


GRID_SCRIPT = Path(__file__).with_name("config_grid_check.py")


@pytest.mark.slow
def test_every_direct_and_pool_config_compiles_without_spills() -> None:
    """Every direct-conv tile the planner or tuner can pick (three epilogues, fp16 and fp32) and every
    window-pool tile pooling.py picks compiles for sm_90 without spilling (both spilled under triton 3.6)."""
    done = run_sm90_script(GRID_SCRIPT)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and ", 0 problems" in done.stdout, output[-4000:]
    checked = int(done.stdout.rsplit("checked ", 1)[1].split()[0])
    assert checked >= 70, done.stdout[-2000:]  # 6 tiles x 3 epilogues x 2 dtypes + the pools


OPS_SCRIPT = Path(__file__).with_name("winograd_ops_check.py")


@pytest.mark.slow
def test_winograd_transforms_do_the_operations_the_cost_model_charges() -> None:
    """The compiled transforms' fp32 adds / FMAs per (tile, channel) row equal the cost model's counts
    (winograd_ops_check.py counts them in the sm_90 PTX), without spills."""
    done = run_sm90_script(OPS_SCRIPT)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and done.stdout.rstrip().endswith("0 problems"), output[-4000:]
    assert done.stdout.count("fp32 operations per row") == 8, done.stdout


SPLIT_SCRIPT = Path(__file__).with_name("split_ctas_check.py")


@pytest.mark.slow
def test_split_k_occupancy_table_is_the_compiled_kernels() -> None:
    """split_k.SM90_RESIDENT_CTAS (what sizes a split to one wave) equals, tile by tile, the CTAs per SM
    of the split-K variants compiled for sm_90 (implicit and plain GEMM, with and without TMA, full and
    ragged K blocks, the RGB gather; fp16 and fp32)."""
    done = run_sm90_script(SPLIT_SCRIPT, "--check")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and ", 0 problems" in done.stdout, output[-4000:]
    assert int(done.stdout.rsplit("checked ", 1)[1].split()[0]) >= 60, done.stdout[-2000:]
