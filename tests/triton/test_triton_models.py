"""Zoo models other than VGG and ResNet through the default pipeline on the Triton backend (see
zoo_cases.py); test_triton_zoo_vgg.py and test_triton_zoo_resnet.py hold the rest, so that each file is a
similar share of the work for `pytest --dist loadfile`. Full-size models run in tests/gpu/."""
from __future__ import annotations

from pathlib import Path

import pytest
from zoo_cases import ZOO_OPTIONS, cases, check_zoo_model

import convc.models

OTHERS = [name for name in convc.models.names() if not name.startswith(("vgg", "resnet"))]


def test_every_zoo_model_has_a_small_configuration() -> None:
    assert set(ZOO_OPTIONS) == set(convc.models.names())
    assert len(ZOO_OPTIONS) >= 21


@pytest.mark.parametrize(("name", "dtype"), cases(OTHERS))
def test_zoo_model(name: str, dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    check_zoo_model(name, dtype)
