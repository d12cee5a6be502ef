"""docs/architecture.md's backend example runs as written (in a fresh process, so the backend it registers
does not outlive the test), and the modules its table names exist."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def test_the_backend_example_runs() -> None:
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_every_path_the_doc_names_exists() -> None:
    paths = set(re.findall(r"`((?:convc|passes|backends|examples|tests|docs)/[\w./-]*)`", DOC.read_text()))
    assert len(paths) > 10
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
