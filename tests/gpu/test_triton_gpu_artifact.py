"""A saved Triton model on a CUDA device (marker `gpu`; skipped without one): any batch up to the maximum
against torch in float64, cubins for the local architecture in the file, and a load that neither passes
nor tunes and gives the compiled model's outputs."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from batch_models import inputs, small_module, small_net, torch_reference
from convc.backends.triton.autotune import Tuner

import convc
from convc.artifact import load_compiled, read_artifact, save_compiled
from convc.numerics import budget, rel_err
from convc.pass_manager import PassManager

pytestmark = pytest.mark.gpu


def test_saved_triton_model_on_the_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path / "cache"))
    module = small_module()
    model = convc.compile(small_net(copy.deepcopy(module)), backend="triton", dtype="float32", max_batch=8,
                          device="cuda")
    for batch in (1, 5, 8):
        x = inputs(batch, seed=batch)
        assert rel_err(model.run(x)[0], torch_reference(module, x)) <= budget("float32", whole_model=True)
    path = save_compiled(model, tmp_path / "small.convc")
    manifest, files = read_artifact(path)
    assert manifest["target"]["device"] == "cuda" and manifest["target"]["arch"].startswith("sm_")
    assert any(name.endswith(".cubin") for name in files)
    monkeypatch.setattr(PassManager, "run", lambda *a, **k: pytest.fail("a pass ran while loading"))
    monkeypatch.setattr(Tuner, "tune", lambda *a, **k: pytest.fail("autotuning ran while loading"))
    loaded = load_compiled(path)
    x = inputs(6, seed=1)
    np.testing.assert_array_equal(loaded.run(x)[0], model.run(x)[0])
