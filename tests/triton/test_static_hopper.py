"""CI check of the static sm_90 report (tests/triton/hopper_report_check.py): ResNet-50, VGG-16, ResNet-18,
AlexNet and GoogLeNet in fp16 at batch 1, 64 and 256 have zero spills, one pipelined main loop per conv
kernel, wgmma in every fp16 conv tile of 64+ rows, and no conv layer under half a wave at batch 64. Runs
in its own process without TRITON_INTERPRET; each distinct kernel variant is compiled once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("hopper_report_check.py")
NEEDS_INTERPRETER = False


# Two processes, one per CI core, with about half of the distinct kernels each.
SHARDS = (["resnet50", "googlenet"], ["vgg16", "resnet18", "alexnet"])


@pytest.mark.slow
def test_zoo_kernels_are_hopper_class_for_sm90() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    runs = [subprocess.Popen([sys.executable, str(SCRIPT), *models], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for models in SHARDS]
    for run in runs:
        out, err = run.communicate(timeout=2400)
        assert run.returncode == 0 and "0 problems" in out, out[-4000:] + err[-2000:]
