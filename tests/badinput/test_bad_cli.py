"""The real `convc` console script under bad options: each case exits 2 (a bad option) or 1 (a model that
cannot be compiled as asked) with one `convc: error:` line naming the culprit, and never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bad_helpers import tiny_net

CONVC = str(Path(sys.executable).parent / "convc")


def convc(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([CONVC, *argv], capture_output=True, text=True, cwd=cwd, timeout=300, check=False,
                          env=full_env)


def assert_refused(result: subprocess.CompletedProcess[str], code: int, *culprits: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("convc: error:")]
    assert error_lines, result.stderr
    for culprit in culprits:
        assert culprit in result.stderr, f"{culprit!r} not named in: {result.stderr}"


CASES = [
    (["run", "lenet5", "--seed", "-1"], 2, ["--seed", "-1"]),
    (["check", "lenet5", "--backends", ","], 2, ["--backends", "names no backend"]),
    (["run", "lenet5", "--batch", "100000000"], 1, ["graph 'lenet5'", "TB", "memory limit"]),
    (["run", "resnet18", "--input", "1,100000,100000"], 1, ["graph 'resnet18'", "TB", "memory limit"]),
    (["check", "lenet5", "--batch", "1000000000"], 1, ["input 'x'", "TB", "memory limit"]),
    (["run", "lenet5", "--plan", "/dev/zero"], 2, ["--plan", "/dev/zero", "not a regular file"]),
    (["run", "lenet5", "-O0", "--algo", "conv1=direct"], 2, ["--algo", "choose_conv_algo", "-O0"]),
    (["compile", "lenet5", "-O0", "--algo", "conv1=bogus"], 2, ["--algo", "-O0", "LAYER=ALGORITHM", "-O2"]),
    (["run", "lenet5", "-O1", "--algo", "no-equals"], 2, ["--algo", "-O1", "LAYER=ALGORITHM", "-O2"]),
    (["run", "lenet5", "-O1", "--plan", "p.json"], 2, ["--plan", "choose_conv_algo", "-O1"]),
    (["run", "lenet5", "--disable", "choose_conv_algo", "--algo", "conv1=direct"], 2, ["--algo", "would be ignored"]),
    (["run", "lenet5", "--passes", "fold_bn", "--disable", "fold_bn"], 2, ["fold_bn", "--passes and --disable"]),
    (["compile", "lenet5", "--dump-ir", "blocker/ir"], 2, ["--dump-ir", "blocker", "not a folder"]),
    (["compile", "lenet5", "--emit", "blocker"], 2, ["--emit", "blocker", "not a folder"]),
    (["compile", "lenet5", "--plan", "blocker/plan.json"], 2, ["--plan", "blocker", "not a folder"]),
    (["run", "m.json"], 1, ["m.json", "version 99"]),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "blocker").write_text("a file where a folder belongs")
    tiny_net("m").save(str(d / "m"))
    doc = json.loads((d / "m.json").read_text())
    doc["version"] = 99
    (d / "m.json").write_text(json.dumps(doc))
    return d


@pytest.mark.slow
@pytest.mark.parametrize("argv, code, culprits", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_options_exit_with_one_named_error(workdir: Path, argv: list[str], code: int,
                                               culprits: list[str]) -> None:
    assert_refused(convc(*argv, cwd=workdir), code, *culprits)


@pytest.mark.slow
def test_bench_checks_its_output_paths_before_measuring(workdir: Path) -> None:
    for flag in ("--json", "--plot"):
        result = convc("bench", "lenet5", "--backends", "numpy", flag, "blocker/out", cwd=workdir)
        assert_refused(result, 2, flag, "blocker")
        assert "timing" not in result.stdout and "images/s" not in result.stdout  # nothing was measured


@pytest.mark.slow
def test_a_cache_folder_that_is_a_file_is_named(workdir: Path) -> None:
    result = convc("run", "lenet5", cwd=workdir, env={"CONVC_CACHE_DIR": str(workdir / "blocker")})
    assert_refused(result, 2, "CONVC_CACHE_DIR", "blocker")


@pytest.mark.slow
def test_a_save_is_loaded_by_the_cli_and_a_good_plan_round_trips(workdir: Path) -> None:
    tiny_net("good").save(str(workdir / "good"))
    first = convc("run", "good.json", "--plan", "good-plan.json", cwd=workdir)
    assert first.returncode == 0, first.stderr
    again = convc("run", "good.json", "--plan", "good-plan.json", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert json.loads((workdir / "good-plan.json").read_text())["format"] == "convc-plan"
