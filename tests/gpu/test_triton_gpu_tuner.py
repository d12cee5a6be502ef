"""The autotuner on a CUDA device (marker `gpu`; skipped without one) never times a kernel that spills:
ResNet-50's layer1.0.conv3 (1x1, 64 -> 256 channels, residual add and relu fused) is where the 8-warp
128x256 and 256x128 tiles spill on sm_90 (triton 3.6-3.9, with and without TMA). Every candidate's
compiled kernel is asked for its spills; the timed ones have none, the set-aside ones some, and on a
Hopper GPU the static compile (tests/triton/config_grid_check.py's facts) agrees candidate by candidate."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convc
from convc.backends.triton.aot import compile_launch, kernel_stats
from convc.backends.triton.autotune import Tuner, candidate_configs, gpu_bench, spilled_bytes
from convc.backends.triton.targets import local_target
from convc.dsl import Network
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.gpu
SHAPE = (4, 64, 56, 56)


def bottleneck_end() -> Network:
    """conv3 of a bottleneck: 1x1 to 256 channels, plus a 1x1 shortcut, then relu (fused into conv3)."""
    net = Network("bottleneck_end", seed=3)
    x = net.input(SHAPE)
    shortcut = net.conv2d(x, 256, 1, name="downsample")
    net.output(net.relu(net.add(net.conv2d(x, 256, 1, name="conv3"), shortcut)))
    return net


def test_the_tuner_times_no_spilling_candidate(tmp_path: Path) -> None:
    net = bottleneck_end()
    model = convc.compile(net, backend="triton", dtype="float16", device="cuda", check_numerics=False,
                          autotune=False)
    launches = model.variants[next(iter(model.variants))].launches
    [at] = [i for i, launch in enumerate(launches) if launch.node == "conv3" and launch.family]
    main = launches[at]
    assert main.meta["EPI_STEP0"] != 0  # the residual add is fused: the epilogue that makes tiles spill
    configs = candidate_configs(main.family, main.tune_key[:3], "float16", False, main.tma)
    timed: list[dict[str, Any]] = []

    def bench(fn: Any) -> float:
        timed.append(dict(fn.config))
        return gpu_bench(fn)

    tuner = Tuner(enabled=True, path=tmp_path / "t.json", bench=bench)
    best = tuner.tune(main, "float16", configs)
    spilled = [cfg for _, cfg, _ in tuner.spilled]
    assert best in timed and not tuner.rejected
    assert all(spilled_bytes(main.with_config(cfg)()) == 0 for cfg in timed)
    assert all(spilled_bytes(main.with_config(cfg)()) > 0 for cfg in spilled)
    assert len(timed) + len(spilled) == len(configs)
    target = local_target()
    if target is not None and target.arch >= 90:  # the runtime's spills are the static compile's
        static = [cfg for cfg in configs
                  if kernel_stats(compile_launch(main.with_config(cfg), target)).spills]
        assert static == spilled, (static, spilled)
    launches[at] = main.with_config(best)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    params = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
    x64 = torch.from_numpy(x.astype(np.float64))
    ref = F.relu(F.conv2d(x64, params["conv3.weight"], params["conv3.bias"])
                 + F.conv2d(x64, params["downsample.weight"], params["downsample.bias"]))
    assert rel_err(model.run(x)[0], ref.numpy()) <= budget("float16")
