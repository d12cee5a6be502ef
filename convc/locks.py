"""Advisory file locks between convc processes (fcntl.flock on a hidden `.<name>.lock` beside the file,
or on the folder itself when given a folder: no lock file left behind).

    with file_lock(path):                # exclusive: writers
        ...
    with file_lock(folder, shared=True): # shared: readers that need a consistent view of several files

Where locks are unavailable (no fcntl on Windows, a read-only folder) the lock is skipped and the
context yields False; callers keep their atomic replacement and consistency checks either way.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; atomic replacement still holds
    fcntl = None  # type: ignore[assignment]


def lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


@contextmanager
def file_lock(path: str | Path, *, shared: bool = False) -> Iterator[bool]:
    """Holds an advisory lock for `path` (a folder, or `.<name>.lock` beside a file); yields whether it is
    held."""
    path = Path(path)
    fd = None
    if fcntl is not None:
        try:
            if path.is_dir():
                fd = os.open(path, os.O_RDONLY)
            else:
                fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:  # a read-only folder or a missing one: no writer can race there
            fd = None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd is not None
    finally:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
