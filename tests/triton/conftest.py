"""Fixtures of the Triton backend tests (CPU interpreter).

- One BLAS thread while these tests run: the interpreter's tl.dot is a NumPy matmul of one block, and on
  the 2-core CI machine a multithreaded OpenBLAS spends 10-100x longer waking threads than multiplying
  a [16, 512] block (measured: 24 ms against 0.2 ms). Restored after each test module.
- Without TRITON_INTERPRET (tests/conftest.py sets it when torch sees no CUDA device) these tests skip:
  they compile for device="cpu"; on a GPU machine tests/gpu/ covers the backend. A test module that needs
  no interpreter sets NEEDS_INTERPRETER = False.
- `small_blocks`: GPU-like block limits for the kernel tests, so their tiny shapes still run several
  programs and several K steps (the interpreter's default blocks would cover them in one program).
"""
from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterator

import numpy as np
import pytest

from convc.backends.triton import common


def _openblas_thread_calls() -> tuple[object, object] | None:
    """(get, set) of the OpenBLAS that NumPy loaded, or None when NumPy uses another BLAS."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: this only looks it up
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", "_64_"), ("openblas", "")):
            get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return None


_BLAS = _openblas_thread_calls()


@pytest.fixture(autouse=True)
def needs_interpreter(request: pytest.FixtureRequest) -> None:
    if not common.INTERPRET and getattr(request.module, "NEEDS_INTERPRETER", True):
        pytest.skip("runs Triton kernels on the CPU interpreter (TRITON_INTERPRET=1); see tests/gpu on a GPU")


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread() -> Iterator[None]:
    if _BLAS is None:
        yield
        return
    get, put = _BLAS
    before = int(get())  # type: ignore[operator]
    put(1)  # type: ignore[operator]
    try:
        yield
    finally:
        put(before)  # type: ignore[operator]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block edges of at most 64 and tiles of at most 4096 elements, as the GPU defaults use."""
    monkeypatch.setattr(common, "INTERPRETER_MAX_BLOCK", 64)
    monkeypatch.setattr(common, "INTERPRETER_TILE", 4096)
