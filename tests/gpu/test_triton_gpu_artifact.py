"""A saved Triton model on a CUDA device (marker `gpu`; skipped without one): any batch up to the maximum
against torch in float64, Triton cache entries for the local architecture in the file, a load that
neither passes nor tunes and gives the compiled model's outputs, and (in a fresh process with an empty
Triton cache) a load whose kernels all come from the file, none compiled."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
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
    assert any(name.startswith("binaries/triton-cache/") and name.endswith(".cubin") for name in files)
    monkeypatch.setattr(PassManager, "run", lambda *a, **k: pytest.fail("a pass ran while loading"))
    monkeypatch.setattr(Tuner, "tune", lambda *a, **k: pytest.fail("autotuning ran while loading"))
    loaded = load_compiled(path)
    x = inputs(6, seed=1)
    np.testing.assert_array_equal(loaded.run(x)[0], model.run(x)[0])


@pytest.mark.parametrize("ahead_of_time", [False, True], ids=["compiled-on-gpu", "compiled-for-target"])
def test_a_saved_model_loads_its_kernels_without_compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            ahead_of_time: bool) -> None:
    from convc.backends.triton.targets import local_target

    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path / "cache"))
    model = convc.compile(small_net(small_module()), backend="triton", dtype="float32", max_batch=4,
                          device="cuda")
    x = inputs(3, seed=2)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", model.run(x)[0])
    if ahead_of_time:  # what `convc compile --target sm_90 -o` writes, on any machine
        target = local_target()
        if target is None:
            pytest.skip("this GPU is of a generation convc does not compile ahead of time for")
        model = convc.compile(small_net(small_module()), backend="triton", dtype="float32", max_batch=4,
                              target=target.name)
    save_compiled(model, tmp_path / "small.convc")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(TRITON_CACHE_DIR=str(tmp_path / "empty-triton-cache"), CONVC_CACHE_DIR=str(tmp_path / "cache"))
    script = Path(__file__).with_name("artifact_load_check.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path), *(["aot"] if ahead_of_time else [])],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0 and "none compiled" in done.stdout, (done.stdout + done.stderr)[-4000:]
