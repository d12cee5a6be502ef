"""Every convolutional torchvision classification model (68: all but ViT, Swin and MaxViT), built with
weights=None and random BatchNorm statistics, through convc against torch in float64 on the same weights.

CI (`make test`): every model through from_torch on the NumPy backend in float32 (budget 1e-4; all but
regnet_y_128gf, which needs ~8 GB), one model per family through torch.onnx.export (opset 20) + from_onnx
on the NumPy backend in float64 (1e-9) and through torch.compile(backend="convc") with no op left to eager
(1e-4), and the same one model per family (zoo.TRITON_CI) on the Triton backend under the interpreter
(1e-4): all 18 took 69 s of CPU (98 s wall) when measured (torchvision_zoo.py), well inside CI's budget, so no
family is left to `make test-zoo` alone. `make test-zoo` (`pytest --zoo=all`) runs every model on every
path, the other 50 on Triton included.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import convc
from convc.numerics import budget, rel_err

zoo = pytest.importorskip("torchvision_zoo")
torch = zoo.torch

pytestmark = [pytest.mark.slow, pytest.mark.zoo]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    everything = metafunc.config.getoption("--zoo") == "all"
    if "name" in metafunc.fixturenames:
        names = zoo.model_names()
        if not everything and metafunc.function.__name__ == "test_triton_interpreter":
            names = sorted(zoo.TRITON_CI)
        elif not everything and metafunc.function.__name__ != "test_from_torch_numpy_float32":
            names = sorted(zoo.FAMILY_REPRESENTATIVES.values())
        marks = {n: [pytest.mark.skip(reason="needs ~8 GB (--zoo=all runs it)")]
                 for n in zoo.HUGE if not everything}
        metafunc.parametrize("name", [pytest.param(n, marks=marks.get(n, [])) for n in names])


def torch_float64(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The reference: the same weights and input in float64 (the model is converted in place)."""
    model.double()
    with torch.no_grad():
        return model(x.double()).numpy()


def test_zoo_lists_the_68_convolutional_models() -> None:
    names = zoo.model_names()
    assert len(names) == 68
    assert set(zoo.FAMILY_REPRESENTATIVES.values()) <= set(names)


def test_from_torch_numpy_float32(name: str) -> None:
    model, x = zoo.build(name)
    net = convc.from_torch(model, x)
    assert set(net.graph.params) == zoo.state_dict_keys(model)
    y = convc.compile(net, backend="numpy", dtype="float32").run(x.numpy())[0]
    err = rel_err(y, torch_float64(model, x))
    assert err <= budget("float32", whole_model=True), err


def test_onnx_float64(name: str, tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("onnx")
    model, x = zoo.build(name, torch.float64, size=zoo.onnx_input_size(name))
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), opset_version=20, dynamo=False)
    net = convc.from_onnx(str(path))
    path.unlink()  # float64 files of 0.1-1.1 GB each: the 68 of `make test-zoo` would fill a small disk
    y = convc.compile(net, backend="numpy", dtype="float64").run(x.numpy())[0]
    err = rel_err(y, torch_float64(model, x))
    assert err <= budget("float64", whole_model=True), err


def test_torch_compile_runs_every_op_on_convc(name: str) -> None:
    model, x = zoo.build(name)
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            y = torch.compile(model, backend="convc")(x).numpy()
    fallbacks = [str(w.message) for w in caught if "eager PyTorch" in str(w.message)]
    assert not fallbacks, fallbacks
    err = rel_err(y, torch_float64(model, x))
    assert err <= budget("float32", whole_model=True), err


def test_triton_interpreter(name: str) -> None:
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0") and not torch.cuda.is_available():
        pytest.skip("the Triton backend needs TRITON_INTERPRET=1 or a CUDA device")
    model, x = zoo.build(name)
    net = convc.from_torch(model, x)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    y = convc.compile(net, backend="triton", dtype="float32", device=device, opt_level=2).run(x.numpy())[0]
    err = rel_err(y, torch_float64(model, x))
    assert err <= budget("float32", whole_model=True), err
