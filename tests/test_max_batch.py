"""One compile, any batch: convc.compile(max_batch=...) and --batch MIN..MAX against torch in float64."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from batch_models import inputs, small_module, small_net, torch_reference

import convc
from convc.batching import BatchedModel
from convc.errors import BackendError, OptionError
from convc.numerics import budget, rel_err


@pytest.mark.parametrize("backend, dtype", [("numpy", "float64"), ("numpy", "float32"), ("torch", "float64"),
                                            pytest.param("torch-compile", "float32", marks=pytest.mark.slow)])
def test_one_compile_runs_every_batch_up_to_the_maximum(backend: str, dtype: str) -> None:
    module = small_module()
    options = {"device": "cpu"} if backend.startswith("torch") else {}
    if dtype == "float64":  # float32 rounding in BN folding and Winograd filter transforms: not batching's
        options["disable"] = ["fold_bn", "winograd_weights"]
    model = convc.compile(small_net(copy.deepcopy(module)), backend=backend, dtype=dtype, max_batch=8,
                          **options)
    assert isinstance(model, BatchedModel) and model.buckets == (1, 2, 4, 8)
    assert model.graph.inputs[0].type.shape == (8, 3, 8, 8) and model.settings["buckets"] == [1, 2, 4, 8]
    assert set(model.plans) == {1, 2, 4, 8} and model.plans[4].input_shapes == ((4, 3, 8, 8),)
    for batch in (1, 3, 5, 8) if backend != "torch-compile" else (3, 8):
        x = inputs(batch, seed=batch)
        got = model.run(x)[0]
        assert got.shape == (batch, 5)
        assert rel_err(got, torch_reference(module, x)) <= budget(dtype, whole_model=True)
    with pytest.raises(BackendError, match="batch 9 is larger than the maximum .* max_batch=9"):
        model.run(inputs(9))


def test_native_call_pads_and_slices_torch_tensors() -> None:
    import torch

    module = small_module()
    model = convc.compile(small_net(copy.deepcopy(module)), backend="torch", dtype="float64", max_batch=4,
                          min_batch=2, device="cpu", disable=["fold_bn"])
    assert model.buckets == (2, 4)
    x = inputs(3)
    out = model(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 5)
    assert rel_err(out.numpy(), torch_reference(module, x)) <= budget("float64", whole_model=True)


def test_buckets_share_equal_parameters() -> None:
    model = convc.compile(small_net(), backend="numpy", max_batch=4)
    one, four = model.models[1].graph.params, model.models[4].graph.params
    both = one.keys() & four.keys()  # buckets may choose other algorithms (Winograd filters differ)
    assert "fc.weight" in both and all(one[k] is four[k] for k in both if np.array_equal(one[k], four[k]))


def test_max_batch_with_a_plan_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="a plan file holds one input shape"):
        convc.compile(small_net(), max_batch=4, plan=tmp_path / "p.json")
    with pytest.raises(OptionError, match="max_batch=0"):
        convc.compile(small_net(), max_batch=0)


def test_cli_batch_range_compiles_once_and_runs_a_batch_inside_it() -> None:
    script = str(Path(sys.executable).parent / "convc")
    out = subprocess.run([script, "run", "lenet5", "--batch", "1..8"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "batch buckets 1, 2, 4, 8" in out.stdout and "shape (1, 10)" in out.stdout
    out = subprocess.run([script, "run", "lenet5", "--batch", "4..2"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 2 and "--batch '4..2'" in out.stderr
