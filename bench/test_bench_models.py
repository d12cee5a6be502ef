"""Whole zoo models on each available backend, compiled with the default pipeline (-O2).

    pytest bench/test_bench_models.py --benchmark-only --benchmark-group-by=param:model
    CONVC_BENCH_BATCH=1 CONVC_BENCH_BACKENDS=triton,torch,torch-compile pytest bench/test_bench_models.py ...

On a GPU the models run at full size (REFERENCE.md's table: ResNet-50, VGG-16, AlexNet, GoogLeNet,
ResNet-18); on a CPU at reduced input sizes. Extra info: images/s and TFLOP/s (2 * the summary's MACs).
`convc bench MODEL` gives the same numbers side by side with speed-ups and an output check.
"""
from __future__ import annotations

import os
from typing import Any

import pytest
from bench_support import BATCH, ON_CUDA, bench_backends, compile_or_skip, device_or_skip, time_runner

from convc import models
from convc.summary import summarize

# model -> input size (None: the model's own)
GPU_MODELS: dict[str, int | None] = {"resnet50": None, "vgg16": None, "alexnet": None, "googlenet": None,
                                     "resnet18": None}
CPU_MODELS: dict[str, int | None] = {"lenet5": None, "resnet18": 64, "resnet50": 64, "vgg16": 32}
MODELS = GPU_MODELS if ON_CUDA else CPU_MODELS
OPT_LEVEL = int(os.environ.get("CONVC_BENCH_OPT", "2"))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("backend", bench_backends())
def test_model(benchmark: Any, backend: str, model: str) -> None:
    device = device_or_skip(backend)
    size = MODELS[model]
    net = models.get(model, batch=BATCH, **({"input_size": size} if size else {}))
    flops = 2 * summarize(net.graph).total_macs
    runner = compile_or_skip(net, backend, device, opt_level=OPT_LEVEL)
    benchmark.group = f"{model} batch {BATCH}"
    benchmark.extra_info.update({"model": model, "batch": BATCH, "opt_level": OPT_LEVEL,
                                 "gflops": flops / 1e9, "input": list(net.graph.inputs[0].type.shape)})
    time_runner(benchmark, runner, flops=flops, images=BATCH)
