"""Shared test set-up: the `gpu` marker skips without CUDA; without CUDA, Triton runs interpreted.

TRITON_INTERPRET is read when kernels are decorated, so it is set here, before any test module
imports the Triton backend.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from convc.numerics import rel_err  # noqa: F401  (tests import it from here too)


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


HAS_CUDA = _has_cuda()
# The -O2 cost model uses the shipped CPU constants in tests, so picks do not depend on the machine's
# load; tests of the calibration itself turn it on (passes/cpu_profile.py).
os.environ.setdefault("CONVC_CALIBRATE", "0")
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--zoo", choices=("ci", "all"), default="ci",
                     help="torchvision zoo tests: 'ci' runs every model's cheapest path and one model per "
                          "family on the costly ones; 'all' every model on every path (make test-zoo)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@contextlib.contextmanager
def _installed_example(example: Path, tmp: Path) -> Iterator[Path]:
    """pip-installs the package in `example` (a regular, non-editable install built from a copy) into a
    folder of its own, put first on sys.path and PYTHONPATH (for the console scripts a test starts)
    until the block ends. Not into the shared venv: another test worker would see its entry points
    appear and vanish mid-test."""
    src, site = tmp / "src", tmp / "site"
    shutil.copytree(example, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    old = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), old) if p)
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
        importlib.invalidate_caches()


@pytest.fixture(scope="session")
def install_example() -> Callable[[Path, Path], contextlib.AbstractContextManager[Path]]:
    """`with install_example(examples_dir / "convc-plugin-example", tmp_path): ...`"""
    return _installed_example
