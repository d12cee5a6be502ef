"""The real `convc` console script, piped with COLUMNS=80: every table fits in 80 columns and never cuts
a layer name; the IR is printed line for line as the printer writes it (never re-wrapped)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convc import models
from convc.printer import to_text

CONVC = Path(sys.executable).with_name("convc")


def convc_piped(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    if not CONVC.exists():
        pytest.skip("no `convc` script next to this Python")
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    return subprocess.run([str(CONVC), *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def assert_fits(out: str, columns: int = 80) -> None:
    long = [line for line in out.splitlines() if len(line) > columns]
    assert not long, f"{len(long)} lines over {columns} columns, e.g. {long[0]!r}"


@pytest.mark.parametrize("model", ["resnet18", "googlenet"])
def test_summary_fits_80_columns_and_shows_every_layer_name_whole(model: str) -> None:
    done = convc_piped("summary", model)
    assert done.returncode == 0, done.stderr
    assert_fits(done.stdout)
    first_words = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    graph = models.get(model, init=False).graph
    layers = [n.name for n in graph.nodes() if n.op != "param"]
    assert len(layers) > 60 and set(layers) <= first_words, sorted(set(layers) - first_words)[:5]
    assert "…" not in done.stdout


def test_plan_passes_models_and_backends_fit_80_columns() -> None:
    plan = convc_piped("plan", "resnet18")
    convs = [n.name for n in models.get("resnet18", init=False).graph.nodes("conv2d")]
    assert plan.returncode == 0 and all(f"\n{name} " in plan.stdout for name in convs)
    for done in (plan, convc_piped("passes"), convc_piped("models"), convc_piped("backends"),
                 convc_piped("compile", "resnet18", "--timing")):
        assert done.returncode == 0, done.stderr
        assert_fits(done.stdout)
        assert "…" not in done.stdout
    zoo = convc_piped("models").stdout
    assert all(f"\n{name} " in zoo for name in models.names())


def test_show_prints_the_printers_lines_unwrapped() -> None:
    done = convc_piped("show", "googlenet", columns=40)
    assert done.returncode == 0, done.stderr
    expected = to_text(models.get("googlenet").graph)
    assert done.stdout == expected + "\n"
    assert max(len(line) for line in expected.splitlines()) > 40  # the test would see a re-wrap


def test_compile_print_ir_is_not_rewrapped() -> None:
    import convc

    done = convc_piped("compile", "lenet5", "--print-ir", columns=40)
    assert done.returncode == 0, done.stderr
    expected = to_text(convc.compile(models.get("lenet5"), backend="numpy").graph).splitlines()
    assert max(len(line) for line in expected) > 40
    printed = done.stdout.splitlines()
    assert printed[:len(expected)] == expected


def test_the_readmes_new_tour_commands_run_as_shown(tmp_path: Path) -> None:
    import re

    import numpy as np

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    wanted = ("convc backends", "convc run lenet5 --input-file", "convc --version")
    lines = [line.split("#")[0].strip() for line in readme.splitlines()
             if line.strip().startswith(wanted)]
    assert len(lines) == 3
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    for line in lines:
        for args in {re.sub(r"\s*\[.*?\]", "", line), line.replace("[", "").replace("]", "")}:
            done = subprocess.run([str(CONVC), *args.split()[1:]], cwd=tmp_path, capture_output=True,
                                  text=True, timeout=300, check=False)
            assert done.returncode == 0, (args, done.stderr)
    assert np.load(tmp_path / "y.npy").shape == (1, 10)


def test_backends_and_bench_tables_fit_80_columns() -> None:
    from convc.registry import backend_names, get_backend

    listed = convc_piped("backends")
    assert listed.returncode == 0 and "…" not in listed.stdout
    assert_fits(listed.stdout)
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines() if line.strip()}
    for name in backend_names():  # each backend whole, with its number of ops
        assert rows[name][2] == str(len(get_backend(name).capabilities.ops))
    bench = convc_piped("bench", "lenet5", "--backends", "numpy,torch,torch-compile", "--repeat", "2")
    assert bench.returncode == 0, bench.stderr
    assert_fits(bench.stdout)
    assert all(f"\n{name} " in bench.stdout for name in ("numpy", "torch", "torch-compile"))
