"""Pass tests write plan caches into a per-test folder, never the user's ~/.cache/convc."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def plan_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "convc-cache"
    monkeypatch.setenv("CONVC_CACHE_DIR", str(cache))
    return cache
