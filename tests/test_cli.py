"""The `convc` CLI: data commands, compile flags, and one-line errors with exit code 2 for bad options."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convc.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_zoo_with_published_counts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert {"lenet5", "alexnet", "vgg16", "googlenet", "resnet50", "alphago_policy", "text_cnn", "c3d"} <= set(rows)
    assert rows["resnet50"]["params"] == 25_557_032
    assert rows["alexnet"]["params"] == 62_378_344


def test_summary_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "summary", "alexnet", "--json")
    data = json.loads(out)
    assert code == 0 and data["total_params"] == 62_378_344
    shapes = {r["name"]: r["shape"] for r in data["layers"]}
    assert shapes["features.0"] == [1, 96, 55, 55]
    assert data["total_macs"] == sum(r["macs"] for r in data["layers"])


def test_summary_batch_and_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "summary", "resnet18", "--batch", "2", "--input", "3,64,64", "--json")
    data = json.loads(out)
    assert data["layers"][0]["shape"] == [2, 3, 64, 64]
    assert data["layers"][-1]["shape"] == [2, 1000]


def test_run_prints_shape_top5_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "lenet5", "--seed", "1")
    assert code == 0
    assert "output %" in out and "shape (1, 10)" in out
    assert out.count("#") >= 5 and "ms per batch of 1" in out


def test_show_text_and_dot(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "show", "lenet5")
    assert "%x = input() : f32[1,1,32,32]" in out and "return %" in out
    _, out, _ = run_cli(capsys, "show", "lenet5", "--format", "dot")
    assert out.startswith('digraph "lenet5"')
    _, out, _ = run_cli(capsys, "show", "resnet18", "--input", "3,32,32", "-O", "2")
    assert "batch_norm" not in out and "epilogue=" in out


def test_check_passes_within_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "lenet5", "--backends", "numpy,torch")
    assert code == 0 and out.count("ok") >= 2


def test_check_fails_for_a_backend_that_cannot_compile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "check", "lenet5", "--backends", "numpy,nosuch")
    assert code == 1 and "unknown backend 'nosuch'" in out


def test_compile_timing_and_dump_ir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "compile", "resnet18", "--input", "3,32,32", "--timing",
                           "--dump-ir", str(tmp_path), "--check-numerics")
    assert code == 0 and "fold_bn" in out and "fuse_epilogue" in out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0] == "00_input.dot" and any(f.endswith("_fold_bn.txt") for f in files)


def test_passes_and_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "passes", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["fold_bn"]["package"] == "convc" and rows["fold_bn"]["default_pipeline"].startswith("O1")
    code, out, _ = run_cli(capsys, "plan", "vgg11", "--input", "3,32,32", "--json")
    assert code == 0 and "features.0" in out


@pytest.mark.parametrize("argv, message", [
    (["summary", "resnet9000"], "unknown model 'resnet9000'; did you mean 'resnet50'"),
    (["run", "lenet5", "--batch", "x"], "--batch 'x': expected a batch size like 8 or a range like 1..64"),
    (["run", "lenet5", "--batch", "0"], "--batch '0': expected positive sizes"),
    (["run", "lenet5", "--dtype", "int8"], "dtype 'int8' is not supported"),
    (["run", "lenet5", "--backend", "cuda9"], "unknown backend 'cuda9'"),
    (["compile", "resnet18", "--disable", "fold_bnn"], "--disable: unknown pass 'fold_bnn'"),
    (["compile", "resnet18", "--algo", "conv1"], "expected LAYER=ALGORITHM"),
    (["summary", "lenet5", "--input", "a,b"], "--input 'a,b': expected integers"),
])
def test_user_mistakes_get_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                               message: str) -> None:
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    _, err = capsys.readouterr()
    assert e.value.code == 2
    assert message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "convc.cli", "summary", "nosuch"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and out.stderr.startswith("convc: error: unknown model")


def test_check_all_backends_marks_what_cannot_run_here(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import convc.benchmark as benchmark

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(benchmark, "cuda_available", lambda: False)
    code, out, _ = run_cli(capsys, "check", "lenet5", "--backends", "all", "--dtype", "float16")
    assert code == 0
    assert "no float16 support" in out  # numpy computes in float32/float64 only
    assert "needs a CUDA device" in out  # triton, without a GPU or the interpreter
