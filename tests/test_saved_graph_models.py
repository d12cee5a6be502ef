"""Graphs saved with net.save are models for every command, through the installed `convc` script."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convc
from convc.errors import FileFormatError, OptionError
from convc.model_files import load_saved_graph, saved_graph_path

CONVC = str(Path(sys.executable).parent / "convc")


def convc_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONVC, *argv], capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def tiny(batch: int = 1) -> convc.Network:
    net = convc.Network("tiny", seed=0)
    x = net.input((batch, 3, 8, 8))
    y = net.relu(net.batch_norm(net.conv2d(x, 4, 3, padding=1)))
    net.output(net.softmax(net.linear(net.flatten(net.max_pool2d(y, 2)), 5)))
    net.randomize_batch_norm(1)
    return net


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    tiny().save(str(tmp_path / "tiny"))
    return tmp_path


def test_console_script_runs_shows_and_summarizes_a_saved_graph(saved: Path) -> None:
    out = convc_cli("run", "tiny.json", "--seed", "3", cwd=saved)
    assert out.returncode == 0, out.stderr
    assert "shape (1, 5)" in out.stdout
    out = convc_cli("summary", "tiny", "--batch", "4", "--json", cwd=saved)  # the stem, both files beside
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["layers"]
    assert rows[0]["shape"] == [4, 3, 8, 8] and rows[-1]["shape"] == [4, 5]
    out = convc_cli("show", "tiny.npz", cwd=saved)
    assert out.returncode == 0 and "%x = input() : f32[1,3,8,8]" in out.stdout


def test_console_script_names_missing_and_corrupt_files(saved: Path) -> None:
    out = convc_cli("run", "nothere.json", cwd=saved)
    assert out.returncode == 2 and "model file 'nothere.json' does not exist" in out.stderr
    (saved / "bad.json").write_text("{ not json")
    (saved / "bad.npz").write_bytes((saved / "tiny.npz").read_bytes())
    out = convc_cli("run", "bad.json", cwd=saved)
    assert out.returncode == 1 and "corrupt JSON" in out.stderr and "Traceback" not in out.stderr


def test_saved_graph_runs_like_the_network_it_came_from(saved: Path) -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8))
    want = convc.compile(tiny(), backend="numpy", dtype="float64").run(x)[0]
    net = load_saved_graph(str(saved / "tiny.json"))
    got = convc.compile(net, backend="numpy", dtype="float64").run(x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_saved_graph_with_another_batch_matches_per_example(saved: Path) -> None:
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8))
    net = load_saved_graph(str(saved / "tiny"), batch=3)
    got = convc.compile(net, backend="numpy", dtype="float64").run(x)[0]
    one = convc.compile(tiny(), backend="numpy", dtype="float64")
    want = np.concatenate([one.run(x[i:i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make, error, message", [
    (lambda d: None, OptionError, "does not exist"),
    (lambda d: (d / "m.json").write_text("{}"), OptionError, "no parameter file"),
    (lambda d: ((d / "m.json").write_text("[1, 2]"), (d / "m.npz").write_bytes(b"")), FileFormatError,
     "m.npz is not a readable parameter archive"),
    (lambda d: ((d / "m.json").write_text('{"format": "other"}'),
                np.savez(d / "m.npz", a=np.zeros(1))), FileFormatError, "m.json: not a convc graph"),
])
def test_bad_saved_graphs_raise_named_errors(tmp_path: Path, make: object, error: type, message: str) -> None:
    make(tmp_path)  # type: ignore[operator]
    with pytest.raises(error, match=message):
        load_saved_graph(str(tmp_path / "m.json"))


def test_other_input_shape_is_refused(saved: Path) -> None:
    with pytest.raises(OptionError, match="saved for input shape 3,8,8"):
        load_saved_graph(str(saved / "tiny.json"), input_shape=(3, 16, 16))


def test_a_zoo_name_without_files_is_not_a_saved_graph(tmp_path: Path) -> None:
    assert saved_graph_path(str(tmp_path / "lenet5")) is None
    assert saved_graph_path("dir/model.JSON") == Path("dir/model.JSON").with_suffix(".json")
