"""What the bench/ suites share: the dtype and sizes for this machine, compiling or skipping, and timing
a compiled model with pytest-benchmark (CUDA work synchronized inside the timed call).

    CONVC_BENCH_DTYPE=bfloat16 CONVC_BENCH_BATCH=64 pytest bench/ --benchmark-only

Defaults: on a GPU float16, full-size layers and models; on a CPU float32 and reduced sizes, so a CPU run
finishes in minutes.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from convc.benchmark import Runner, backend_options, first_line, make_runner, placement
from convc.compiler import compile as convc_compile
from convc.device_profiles import cuda_available
from convc.dsl import Network
from convc.ir import Graph
from convc.numerics_check import seeded_inputs
from convc.registry import backend_names, get_backend

ON_CUDA = cuda_available()
DTYPE = os.environ.get("CONVC_BENCH_DTYPE", "float16" if ON_CUDA else "float32")
BATCH = int(os.environ.get("CONVC_BENCH_BATCH", "64" if ON_CUDA else "1"))
# CPU runs shrink spatial sizes by this factor (and channels by half): the shapes keep their proportions.
CPU_REDUCTION = 4
ROUNDS = int(os.environ.get("CONVC_BENCH_ROUNDS", "50" if ON_CUDA else "5"))
WARMUP_ROUNDS = 5 if ON_CUDA else 1


def bench_backends() -> list[str]:
    """CONVC_BENCH_BACKENDS (comma-separated) or every registered backend."""
    chosen = os.environ.get("CONVC_BENCH_BACKENDS")
    names = [n.strip() for n in chosen.split(",")] if chosen else backend_names()
    return [n for n in names if n]


def device_or_skip(backend: str, dtype: str = DTYPE) -> str:
    try:
        device, why = placement(backend, dtype)
    except Exception as e:  # a backend plugin that does not load is skipped with its reason
        pytest.skip(f"{backend}: {e}")
    if device is None:
        pytest.skip(f"{backend}: {why}")
    return device


def conv_algos(backend: str) -> list[str | None]:
    """The conv algorithms a backend lists (torch's "cudnn" too: its lookup ignores the attribute and cuDNN
    chooses); [None] for a backend that lists none or does not load."""
    try:
        algos = list(get_backend(backend).capabilities.conv_algos)
    except Exception:
        return [None]
    return list(algos) or [None]


def compile_or_skip(model: Network | Graph, backend: str, device: str, *, opt_level: int = 2) -> Runner:
    """Compiles for `backend` and binds a seeded input (created once); a failure skips with its reason."""
    graph = model.graph if isinstance(model, Network) else model
    try:
        compiled = convc_compile(model, backend=backend, dtype=DTYPE, opt_level=opt_level,
                                 check_numerics=False,
                                 **backend_options(backend, device, cuda_graphs=False))
        inputs = [x.astype(np.float32) for x in seeded_inputs(graph)]
        runner = make_runner(compiled, backend, device, DTYPE, inputs)
        runner.first_output()  # compiles lazily built kernels (torch.compile, autotuning) outside the timing
    except Exception as e:
        pytest.skip(f"{backend} cannot run this case: {first_line(e)}")
    return runner


def time_runner(benchmark: Any, runner: Runner, *, flops: int = 0, images: int = 0) -> None:
    """pytest-benchmark timing of one forward per round; CUDA is synchronized inside the timed call so the
    wall clock sees the GPU's work. Records TFLOP/s and images/s as extra info."""
    if runner.device == "cuda":
        import torch

        def call() -> None:
            runner.call()
            torch.cuda.synchronize()
    else:
        call = runner.call
    with runner.context():
        benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    benchmark.extra_info.update({"device": runner.device, "dtype": DTYPE})
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats is not None else None
    if median:
        if flops:
            benchmark.extra_info["tflops"] = flops / median / 1e12
        if images:
            benchmark.extra_info["images_per_s"] = images / median
