"""Every `convc ...` line of the README's command tour runs as shown through the real console script:
once without its [optional] parts and once with all of them. Lines whose zoo model would take minutes on
two CPU cores (ResNet-50 at -O3, a 64-image float16 bench, an sm_90 compile of every ResNet-50 kernel)
run once, with all their options, on LeNet-5; `bench/gpu_campaign.sh` is tests/test_gpu_campaign.py's and
`bench/gpu_results.py` tests/test_gpu_results.py's."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
CONVC = Path(sys.executable).with_name("convc")
# Tour lines whose model is too large for a test on two cores: the model they run on instead.
SMALLER = {"convc run resnet50": "lenet5", "convc compile resnet50": "lenet5", "convc plan vgg16": "lenet5",
           "convc bench resnet50": "lenet5"}
COVERED_ELSEWHERE = ("bench/gpu_campaign.sh", "python bench/gpu_results.py")


def tour_lines() -> list[str]:
    """The indented command lines of the README's command tour, comments dropped."""
    text = README.read_text()
    start = text.index("    convc models")
    block = text[start:text.index("\n\n", start)]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def variants(line: str) -> list[str]:
    """The line without its [optional] parts and with all of them."""
    return list(dict.fromkeys([re.sub(r"\s*\[.*?\]", "", line), line.replace("[", "").replace("]", "")]))


def runnable(line: str) -> list[str]:
    """The command lines to run for a tour line: both variants, or all options on a smaller model."""
    for prefix, model in SMALLER.items():
        if line.startswith(prefix + " "):
            return variants(line.replace(prefix.split()[-1], model, 1))[-1:]
    return variants(line)


def test_the_tour_is_what_this_test_reads() -> None:
    lines = tour_lines()
    assert lines[0] == "convc models" and len(lines) >= 15
    assert all(line.startswith(("convc ", *COVERED_ELSEWHERE)) for line in lines), lines
    assert {prefix for prefix in SMALLER if any(line.startswith(prefix + " ") for line in lines)} == set(SMALLER)


@pytest.mark.slow
@pytest.mark.parametrize("line", [line for line in tour_lines() if not line.startswith(COVERED_ELSEWHERE)],
                         ids=lambda line: " ".join(line.split()[:3]))
def test_every_tour_command_runs(line: str, tmp_path: Path) -> None:
    if not CONVC.exists():
        pytest.skip("no `convc` script next to this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "CONVC_CACHE_DIR": str(tmp_path / "cache")}
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    if "lenet5.convc" in line and "-o" not in line:  # `convc run lenet5.convc` runs what the line above wrote
        subprocess.run([str(CONVC), "compile", "lenet5", "-o", "lenet5.convc"], cwd=tmp_path, env=env,
                       check=True, capture_output=True, timeout=300)
    for args in runnable(line):
        done = subprocess.run([str(CONVC), *args.split()[1:]], cwd=tmp_path, capture_output=True, text=True,
                              env=env, timeout=600, check=False)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
