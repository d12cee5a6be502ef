"""Small zoo models end to end through convc.compile's default pass pipeline (BN folding, epilogue fusion,
algorithm choice) on the Triton backend, against the unoptimised graph on the NumPy backend in float64.
Full-size models run in tests/gpu/test_triton_gpu.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from triton_check import random_inputs, reference

import convc
import convc.models
from convc.numerics import budget, rel_err

SMALL = {
    "text_cnn": dict(input_size=12, embedding=16, maps=8),
    "alphago_policy": dict(k=8, input_size=9),
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_model(name: str, dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    net = convc.models.get(name, **SMALL[name])
    model: Any = convc.compile(net, backend="triton", dtype=dtype, device="cpu")
    xs = random_inputs(net)
    outs = model.run(*xs)
    refs = reference(net, *xs)
    for out, ref in zip(outs, refs):
        assert rel_err(out, ref) <= budget(dtype, whole_model=True)
