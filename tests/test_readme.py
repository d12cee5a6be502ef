"""The README's tour runs as written (its first two Python blocks), so the README stays true."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_dsl_and_compile_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    scope: dict = {}
    exec(blocks[0], scope)  # noqa: S102  the DSL example
    assert scope["y"].shape == (1, 10)
    assert (tmp_path / "tiny.json").exists() and (tmp_path / "tiny.npz").exists()
    compile_block = blocks[2].split("\ngpu = ")[0]  # the Triton lines need a GPU
    scope["x_numpy"] = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    exec(compile_block, scope)  # noqa: S102
    probs = scope["probs"]
    assert probs.shape == (1, 10) and abs(float(probs.sum()) - 1.0) < 1e-5


def test_readme_plugin_code_is_the_example_package() -> None:
    plugin = (README.parents[0] / "examples/convc-plugin-example/convc_plugin_example/__init__.py").read_text()
    readme_fn = [b for b in python_blocks() if "def conv1x1_to_linear" in b][0]
    # Every statement line of the README's version appears in the package (modulo line wrapping).
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    body = squash(plugin)
    for line in readme_fn.splitlines():
        line = line.split("#")[0]
        if line.strip() and not line.strip().startswith(("from ", "import ")):
            assert squash(line) in body or squash(line).rstrip(",") in body, line
