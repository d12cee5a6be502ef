"""Shared test set-up: the `gpu` marker skips without CUDA; without CUDA, Triton runs interpreted.

TRITON_INTERPRET is read when kernels are decorated, so it is set here, before any test module
imports the Triton backend.
"""
from __future__ import annotations

import os

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
