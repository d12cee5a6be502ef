"""Exit codes: 2 for a mistake on the command line, 1 for a failed check or run, 130 when interrupted;
`bench` fails when a requested case errors (not when a backend cannot run here) and keeps, prints and
writes (--json) the cases that finished when interrupted. --dtype aliases; .npy inputs and outputs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convc
from convc import benchmark
from convc.cli import main
from convc.errors import BackendError
from convc.types import check_dtype


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("alias, canonical", [
    ("fp16", "float16"), ("half", "float16"), ("FP16", "float16"), ("f16", "float16"),
    ("bf16", "bfloat16"), ("fp32", "float32"), ("float", "float32"), ("single", "float32"),
    ("fp64", "float64"), ("double", "float64"), ("torch.float16", "float16"), ("float64", "float64"),
])
def test_dtype_aliases(alias: str, canonical: str) -> None:
    assert check_dtype(alias) == canonical


@pytest.mark.parametrize("argv, message", [
    (["run", "missing.onnx"], "model file 'missing.onnx' does not exist"),
    (["run", "missing.py:build"], "model file 'missing.py' does not exist"),
    (["run", "ResNet-9"], "did you mean"),
    (["run", "lenet5", "--dtype", "fp8"], "dtype 'fp8' is not supported"),
    (["run", "lenet5", "--dtype", "half"], "--dtype float16: backend 'numpy' computes in float32, float64"),
    (["run", "lenet5", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["bench", "lenet5", "--backends", "numpy,nope"], "unknown backend nope"),
])
def test_command_line_mistakes_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_dtype_alias_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "LeNet5", "--dtype", "fp64")
    assert code == 0 and "(float64, -O2)" in out


def failing_compile(fail: str) -> Any:
    """convc.compile, except that backend `fail` raises (`KeyboardInterrupt` for 'interrupt@B': at batch B)."""
    real = benchmark.convc_compile

    def compile_or_fail(net: convc.Network, backend: str, **kw: Any) -> Any:
        if fail.startswith("interrupt@") and net.graph.inputs[0].type.shape[0] == int(fail.split("@")[1]):
            raise KeyboardInterrupt
        if backend == fail:
            raise BackendError(f"backend '{backend}' cannot run node 'conv1' (injected)")
        return real(net, backend=backend, **kw)
    return compile_or_fail


def test_bench_exits_1_when_a_requested_case_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmark, "convc_compile", failing_compile("torch"))
    monkeypatch.setattr(benchmark, "cuda_available", lambda: False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    report = tmp_path / "bench.json"
    code, out, _ = run_cli(capsys, "bench", "lenet5", "--backends", "numpy,torch,triton", "--repeat", "2",
                           "--json", str(report))
    statuses = {r["backend"]: r["status"] for r in json.loads(report.read_text())["results"]}
    assert statuses == {"numpy": "ok", "torch": "error", "triton": "unavailable"}
    assert code == 1 and "injected" in out
    # The same run without the failing backend: triton cannot run here, which is not a failure.
    code, _, _ = run_cli(capsys, "bench", "lenet5", "--backends", "numpy,triton", "--repeat", "2")
    assert code == 0


def test_bench_interrupted_keeps_and_writes_what_finished(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmark, "convc_compile", failing_compile("interrupt@2"))
    report = tmp_path / "bench.json"
    code, out, _ = run_cli(capsys, "bench", "lenet5", "--backends", "numpy", "--batch", "1,2,4",
                           "--repeat", "2", "--json", str(report))
    data = json.loads(report.read_text())
    assert code == 130 and data["interrupted"] is True
    assert [(r["backend"], r["batch"], r["status"]) for r in data["results"]] == [("numpy", 1, "ok")]
    assert "interrupted: 1 of 3 cases ran" in out and "numpy" in out


def test_check_that_fails_exits_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from convc.commands import check

    monkeypatch.setattr(check, "budget", lambda dtype, whole_model=True: 1e-30)  # nothing meets it
    code, out, _ = run_cli(capsys, "check", "lenet5", "--backends", "numpy")
    assert code == 1 and "FAIL" in out


# ---------------------------------------------------------------------------- run with .npy files
def test_run_reads_a_npy_input_and_writes_the_output(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = run_cli(capsys, "run", "lenet5", "--input-file", str(tmp_path / "x.npy"),
                           "--output", str(tmp_path / "y.npy"), "--repeat", "3")
    assert code == 0 and "median" in out and "min" in out and "3 timed runs" in out
    y = np.load(tmp_path / "y.npy")
    # The reference: the same seeded LeNet-5 on the torch backend in float64.
    ref = convc.compile(convc.models.get("lenet5"), backend="torch", dtype="float64").run(x.astype(np.float64))[0]
    assert y.shape == (1, 10) and np.abs(y - ref).max() / np.abs(ref).max() < 1e-5


def test_run_input_file_mistakes_are_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.save(tmp_path / "rgb.npy", np.zeros((1, 3, 32, 32), np.float32))
    np.save(tmp_path / "nobatch.npy", np.zeros((1, 32, 32), np.float32))
    np.save(tmp_path / "batch4.npy", np.zeros((4, 1, 32, 32), np.float32))
    np.save(tmp_path / "text.npy", np.array(["a"] * 1024).reshape(1, 1, 32, 32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    for name, message in [("rgb", "shape (1, 3, 32, 32) is not the input's (1, 1, 32, 32)"),
                          ("nobatch", "add the batch axis"), ("batch4", "run with --batch 4"),
                          ("text", "not real numbers"), ("junk", "not a readable .npy"),
                          ("missing", "no such file")]:
        code, _, err = run_cli(capsys, "run", "lenet5", "--input-file", str(tmp_path / f"{name}.npy"))
        assert code == 2 and message in err and "Traceback" not in err, err


def test_outputs_to_a_folder_and_inputs_from_npz(tmp_path: Path) -> None:
    from convc.commands.arrays import read_inputs, write_outputs

    a, b = np.arange(6.0).reshape(2, 3), np.ones((1, 4))
    paths = write_outputs(tmp_path / "outs", ["logits", "aux/probs"], [a, b])
    assert [p.name for p in paths] == ["logits.npy", "aux_probs.npy"]
    np.testing.assert_array_equal(np.load(paths[0]), a)
    with pytest.raises(convc.OptionError, match="2 outputs .*give a folder"):
        write_outputs(tmp_path / "one.npy", ["logits", "probs"], [a, b])
    net = convc.Network("two")
    x, y = net.input((1, 2, 4, 4), name="image"), net.input((1, 2, 4, 4), name="mask")
    net.output(net.add(x, y))
    arrays = {"image": np.ones((1, 2, 4, 4)), "mask": np.full((1, 2, 4, 4), 2.0)}
    np.savez(tmp_path / "in.npz", **arrays)
    got = read_inputs(tmp_path / "in.npz", net.graph)
    assert [g.dtype for g in got] == [np.float32] * 2 and float(got[1][0, 0, 0, 0]) == 2.0
    np.savez(tmp_path / "partial.npz", image=arrays["image"])
    with pytest.raises(convc.OptionError, match="no array for input\\(s\\) mask"):
        read_inputs(tmp_path / "partial.npz", net.graph)
