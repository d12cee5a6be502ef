"""How the backend runs under TRITON_INTERPRET: blocks sized to cover the problem (the interpreter pays per
program and per op, not per element), and the interpreter's int32 overflow assertions switched off only
while our own kernels run (compiled GPU kernels do not check either)."""
from __future__ import annotations

import math

import pytest
from triton.runtime import interpreter
from triton_check import check, compile_triton

import convc.models
from convc.backends.triton.autotune import interpreter_config
from convc.backends.triton.common import row_blocks, unchecked_overflow
from convc.dsl import Network


def is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@pytest.mark.parametrize("sizes", [(50, 70, 300), (1, 10, 4096), (10**6, 2048, 4096), (1568, 6, 1)])
def test_interpreter_gemm_blocks_cover_the_problem_within_limits(sizes: tuple[int, int, int]) -> None:
    m, n, k = sizes
    cfg = interpreter_config("conv_implicit_gemm", sizes)
    assert all(is_pow2(v) and v >= 16 for v in cfg.values())  # tl.dot needs 16 or more
    assert cfg["BLOCK_N"] == min(512, max(16, 1 << (n - 1).bit_length()))
    assert cfg["BLOCK_K"] == min(512, max(16, 1 << (k - 1).bit_length()))
    assert cfg["BLOCK_M"] >= min(m, 512) and cfg["BLOCK_M"] * max(cfg["BLOCK_N"], cfg["BLOCK_K"]) <= 1 << 18
    direct = interpreter_config("conv_direct", sizes)
    assert set(direct) == {"BLOCK_M", "BLOCK_N"} and direct["BLOCK_M"] * direct["BLOCK_N"] <= 1 << 18


def test_memory_bound_blocks_cover_the_matrix() -> None:
    assert row_blocks(1568, 6, gpu_elements=4096, gpu_max_cols=128) == (2048, 8)
    block_m, block_c = row_blocks(10**6, 3000, gpu_elements=4096, gpu_max_cols=128)
    assert block_c == 512 and block_m * block_c == 1 << 18


def test_a_small_model_runs_one_program_per_launch() -> None:
    net = convc.models.get("lenet5", batch=2)
    model = compile_triton(net)
    assert [math.prod(launch.grid) for launch in model.launches] == [1] * len(model.launches)


@pytest.mark.usefixtures("small_blocks")
def test_lowered_limits_give_gpu_sized_tiles() -> None:
    cfg = interpreter_config("gemm", (1000, 1000, 1000))
    assert cfg == {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64}


def test_overflow_checks_are_off_only_inside_our_launches(monkeypatch: pytest.MonkeyPatch) -> None:
    builder = interpreter.interpreter_builder
    assert builder.options.sanitize_overflow
    with unchecked_overflow():
        assert not builder.options.sanitize_overflow
    assert builder.options.sanitize_overflow
    monkeypatch.setenv("CONVC_TRITON_SANITIZE_OVERFLOW", "1")
    with unchecked_overflow():
        assert builder.options.sanitize_overflow


def test_kernels_pass_the_overflow_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the assertions on, every kernel family's index math fits int32 at these shapes."""
    monkeypatch.setenv("CONVC_TRITON_SANITIZE_OVERFLOW", "1")
    net = Network("checked", seed=2)
    x = net.input((2, 3, 9, 9))
    y = net.max_pool2d(net.relu(net.conv2d(x, 16, 3, padding=1)), 2)
    y = net.lrn(net.conv2d(y, 16, 3, padding=1, groups=16), size=3)
    net.output(net.softmax(net.linear(net.flatten(y), 10)))
    check(net, "float32")
