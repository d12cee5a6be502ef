"""Files several convc processes share: merge-on-write JSON caches, bounded reads, the cache folder.

    update_json(cache, lambda old: {**(old or {}), "k": 1})   # read, merge and replace under the lock
    text = read_bounded(Path("plan.json"), what="--plan")      # refuses /dev/zero and other endless files

Two processes that update the same cache each merge their entries into what is on disk at the moment they
write, under an exclusive `fcntl.flock` on a hidden `.<name>.lock` file next to it, so neither loses the
other's update. Where locks are unavailable (no fcntl, a read-only folder) the update still replaces the
file atomically; it only loses the guarantee against a racing writer.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convc.errors import ConvcError, OptionError
from convc.locks import file_lock
from convc.serialize import MAX_TEXT_FILE_BYTES, atomic_write, read_bounded  # noqa: F401  (re-exported)

def update_json(path: str | Path, merge: Callable[[Any], Any]) -> Any:
    """Under an exclusive lock: reads `path` (None when missing or not JSON), writes `merge(current)`.

    Returns what was written. Raises OSError when the folder cannot be written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        try:
            current = json.loads(read_bounded(path, what=str(path)))
        except (OSError, ValueError, ConvcError):
            current = None
        new = merge(current)
        atomic_write(path, json.dumps(new, indent=1, sort_keys=True).encode())
    return new


def cache_dir() -> Path:
    """$CONVC_CACHE_DIR (default ~/.cache/convc); an OptionError when it names something not a folder."""
    base = Path(os.environ.get("CONVC_CACHE_DIR") or Path.home() / ".cache" / "convc")
    if base.exists() and not base.is_dir():
        raise OptionError(f"cache folder {base} (CONVC_CACHE_DIR) exists and is not a folder; point "
                          f"CONVC_CACHE_DIR at a folder or remove the file")
    return base


def check_output_path(path: str | Path, what: str, *, folder: bool = False) -> Path:
    """Refuses, before any work is done, an output path that cannot be written: a folder where a file
    belongs (or the reverse), a file where a parent folder belongs, a folder without write permission."""
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise OptionError(f"{what} {p}: exists and is not a folder")
    if not folder and p.is_dir():
        raise OptionError(f"{what} {p}: is a folder; name a file")
    ancestor = p if folder else p.parent
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OptionError(f"{what} {p}: {ancestor} is a file, not a folder")
    try:  # a real probe: permissions, read-only mounts and pseudo file systems all answer it truthfully
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as e:
        raise OptionError(f"{what} {p}: cannot write in the folder {ancestor} ({e.strerror or e})") from None
    return p
