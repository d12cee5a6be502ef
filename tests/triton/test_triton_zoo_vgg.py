"""Every VGG of the zoo, plain and with batch norm, through the default pipeline on the Triton backend
(see zoo_cases.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from zoo_cases import cases, check_zoo_model

import convc.models

MODELS = [name for name in convc.models.names() if name.startswith("vgg")]


@pytest.mark.parametrize(("name", "dtype"), cases(MODELS))
def test_zoo_model(name: str, dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    check_zoo_model(name, dtype)
