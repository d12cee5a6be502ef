"""Triton (interpreter): one compile for every batch up to a maximum, and a saved compiled model that loads
with no pass and no autotuning and gives the original's outputs."""
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


@pytest.fixture(scope="module")
def compiled() -> tuple[object, object]:
    module = small_module()
    model = convc.compile(small_net(copy.deepcopy(module)), backend="triton", dtype="float32", max_batch=4,
                          device="cpu")
    return module, model


def test_any_batch_up_to_the_maximum_matches_torch_float64(compiled: tuple[object, object]) -> None:
    module, model = compiled
    assert model.buckets == (1, 2, 4)  # type: ignore[attr-defined]
    for batch in (1, 3, 4):
        x = inputs(batch, seed=batch)
        got = model.run(x)[0]  # type: ignore[attr-defined]
        assert got.shape == (batch, 5)
        assert rel_err(got, torch_reference(module, x)) <= budget("float32", whole_model=True)  # type: ignore


def test_saved_model_loads_without_passes_or_tuning(compiled: tuple[object, object], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, model = compiled
    path = save_compiled(model, tmp_path / "small.convc")  # type: ignore[arg-type]
    manifest, _ = read_artifact(path)
    assert manifest["binaries_note"].startswith("none: under the Triton interpreter")
    assert manifest["target"]["interpreter"] is True and manifest["target"]["packages"]["triton"]
    bucket = manifest["models"]["4"]
    assert bucket["backend_state"]["tuned"] and bucket["backend_arrays"]  # configurations and packed weights
    monkeypatch.setattr(PassManager, "run", lambda *a, **k: pytest.fail("a pass ran while loading"))
    monkeypatch.setattr(Tuner, "tune", lambda *a, **k: pytest.fail("autotuning ran while loading"))
    from convc.backends.triton.context import NodeContext

    def no_packing(self: NodeContext, kind: str, make: object) -> object:
        assert (self.node.name, kind) in self.packed, f"{self.node.name} {kind} packed again"
        return self.packed[(self.node.name, kind)]
    monkeypatch.setattr(NodeContext, "pack", no_packing)
    loaded = load_compiled(path)
    for batch in (2, 3):
        x = inputs(batch, seed=10 + batch)
        np.testing.assert_array_equal(loaded.run(x)[0], model.run(x)[0])  # type: ignore[attr-defined]
    configs = [launch.config for launch in loaded.models[4].launches if launch.family]  # type: ignore
    assert configs == [launch.config for launch in model.models[4].launches if launch.family]  # type: ignore
