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
source and argument types, so a machine compiles each kernel once (about a second each, on first call).
numba writes those files atomically (a temporary file, then a rename) under the umask; a cache file that
is corrupt or truncated anyway (numba itself would stop with EOFError) is deleted and the kernel compiled
afresh, see `_RebuildingCache`. numba keys a cache entry by the kernel's own file only, so a change to a
helper it inlines from another file (exp_jit.py, say) would leave the old machine code running; the key
here also holds a digest of every source file of this package, so any change there compiles afresh.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from convc.device_profiles import NUMBA_SWITCH, compiled_cpu_kernels

F = TypeVar("F", bound=Callable[..., Any])

SWITCH = NUMBA_SWITCH  # "CONVC_NUMBA": "0" runs the NumPy kernels even where numba is installed

try:
    import numba as _numba
    from numba.core.caching import FunctionCache as _FunctionCache
except ImportError:  # numba missing or broken: the NumPy kernels serve
    _numba = None
    _FunctionCache = object

# The dtypes the compiled kernels are built for (one signature each); others (float16) take NumPy's path.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

OPTIONS: dict[str, Any] = {"nogil": True, "fastmath": {"contract"}, "error_model": "numpy"}


@functools.cache
def sources_digest() -> str:
    """SHA-256 of every .py file of this package (the kernels and the helpers they inline), by name."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class _RebuildingCache(_FunctionCache):  # type: ignore[misc,valid-type]
    """numba's on-disk cache of one function, except that an unreadable entry (a truncated index, a
    corrupt data file) is a cache miss: the function's files are removed and the kernel compiled again,
    which writes them afresh. numba's own cache raises the unpickling error to the caller instead."""

    def _index_key(self, sig: Any, codegen: Any) -> Any:
        return (*super()._index_key(sig, codegen), sources_digest())

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # noqa: BLE001  (any unpickling error: EOFError, UnpicklingError, ValueError...)
            try:
                self.flush()
            except OSError:
                pass
            return None


def _compiled(fn: Callable[..., Any], **extra: Any) -> Any:
    dispatcher = _numba.njit(cache=False, **OPTIONS, **extra)(fn)
    dispatcher._cache = _RebuildingCache(fn)  # what cache=True would set, with the rebuild on corruption
    return dispatcher


def installed() -> bool:
    """numba imports on this machine."""
    return _numba is not None


def enabled() -> bool:
    """The compiled kernels run: numba is installed and `CONVC_NUMBA` is not "0" (read at each call, so a
    test or a user can switch it for one model)."""
    return _numba is not None and compiled_cpu_kernels()


def enabled_for(dtype: Any) -> bool:
    """enabled(), and `dtype` is one of DTYPES: the compiled kernel can run on arrays of it."""
    return enabled() and np.dtype(dtype) in DTYPES


def version() -> str | None:
    return None if _numba is None else str(_numba.__version__)


def kernel(fn: F) -> F:
    """`fn` compiled by numba with the options above (lazily, on its first call), or `fn` itself where
    numba is missing: callers test `enabled()` first, the plain-Python loop is never meant to run."""
    if _numba is None:
        return fn
    return _compiled(fn)  # type: ignore[no-any-return]


def inline(fn: F) -> F:
    """A helper that compiled kernels call (an activation, an index computation), inlined into them."""
    if _numba is None:
        return fn
    return _compiled(fn, inline="always")  # type: ignore[no-any-return]


__all__ = ["DTYPES", "OPTIONS", "SWITCH", "enabled", "enabled_for", "inline", "installed", "kernel",
           "sources_digest", "version"]
