"""Scratch buffers a kernel fills and consumes before it returns (a column matrix, a padded input), kept
per thread and per purpose and reused across calls instead of allocated afresh.

    cols = scratch("im2col columns", (n, c, 3, 3, 56, 56), np.float32)   # contents are left over: write all

A fresh 100 MB array per call costs the kernel a page fault per 4 KiB page on first touch; a reused one
is already mapped (and often cached). Each thread has its own buffers, so models may run in several
threads at once; within a thread kernels run one at a time, and a kernel never returns its scratch (it
returns the GEMM's fresh output), so one buffer per purpose is enough. A buffer grows to the largest
request it has seen and stays that size until the thread ends or `release_scratch()` is called.
"""
from __future__ import annotations

import math
import threading

import numpy as np

_buffers = threading.local()


def scratch(purpose: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A C-contiguous array of `shape` and `dtype` backed by this thread's buffer for `purpose`.
    Its contents are whatever the last user left: the caller writes every element it reads."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    pool: dict[str, np.ndarray] = _buffers.__dict__.setdefault("pool", {})
    buffer = pool.get(purpose)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = np.empty(max(nbytes, 1), np.uint8)
        pool[purpose] = buffer
    return buffer[:nbytes].view(dtype).reshape(shape)


def release_scratch() -> None:
    """Frees this thread's scratch buffers (the next kernel allocates them again)."""
    _buffers.__dict__.pop("pool", None)
