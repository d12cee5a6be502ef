"""Compiled CPU loops for the NumPy backend, through numba: the work NumPy cannot do in one pass.

NumPy runs one whole-array operation at a time, so a depthwise tap or a bias + activation + residual
epilogue makes a trip to memory per operation, and nothing fuses a multiply with its add. A few kernels
of this backend are therefore also written as plain loops that numba compiles to machine code (LLVM,
vectorized, fused multiply-add allowed). The NumPy versions stay: they run where numba is not installed
(it is a dependency of convc, but a machine with no package index may lack it) or is switched off with
`CONVC_NUMBA=0`, and the tests compare the two.

    from convc.backends.numpy_ref import jit

    @jit.kernel
    def scale_(x, s):                      # a loop over a C-contiguous array
        for i in range(x.size):
            x.flat[i] *= s

    if jit.enabled():
        scale_(array, 2.0)                 # compiled on first call per argument types, cached on disk

Numerics: only contraction into fused multiply-add is allowed (`fastmath={"contract"}`), never the
fast-math flags that assume no NaN or inf or reorder sums, so NaN and inf propagate as they do in NumPy;
`error_model="numpy"` makes a division by zero give inf or NaN rather than raise. Compiled code is cached
in numba's own cache (next to this file, or the user cache folder where that is read-only), keyed by
source and argument types, so a process compiles each kernel at most once per machine.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

SWITCH = "CONVC_NUMBA"  # "0" runs the NumPy kernels even where numba is installed

try:
    import numba as _numba
except ImportError:  # numba missing or broken: the NumPy kernels serve
    _numba = None

OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": {"contract"}, "error_model": "numpy"}


def installed() -> bool:
    """numba imports on this machine."""
    return _numba is not None


def enabled() -> bool:
    """The compiled kernels run: numba is installed and `CONVC_NUMBA` is not "0" (read at each call, so a
    test or a user can switch it for one model)."""
    return _numba is not None and os.environ.get(SWITCH, "1") != "0"


def version() -> str | None:
    return None if _numba is None else str(_numba.__version__)


def kernel(fn: F) -> F:
    """`fn` compiled by numba with the options above (lazily, on its first call), or `fn` itself where
    numba is missing: callers test `enabled()` first, the plain-Python loop is never meant to run."""
    if _numba is None:
        return fn
    return _numba.njit(**OPTIONS)(fn)  # type: ignore[no-any-return]


def inline(fn: F) -> F:
    """A helper that compiled kernels call (an activation, an index computation), inlined into them."""
    if _numba is None:
        return fn
    return _numba.njit(inline="always", **OPTIONS)(fn)  # type: ignore[no-any-return]


__all__ = ["OPTIONS", "SWITCH", "enabled", "inline", "installed", "kernel", "version"]
