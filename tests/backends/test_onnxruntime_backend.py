"""The onnxruntime baseline backend: compiled through the ONNX exporter, it runs zoo models to the
NumPy float64 numbers, honours its thread count, refuses bad options, and `convc check` and `convc
bench` take it like any backend."""
from __future__ import annotations

import numpy as np
import pytest

import convc
import convc.models
from convc.cli import main
from convc.errors import BackendError, OptionError
from convc.numerics import budget, rel_err

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name,options", [("resnet18", {"input_size": 32}), ("vgg11", {"input_size": 32}),
                                          ("googlenet", {"input_size": 64})])
def test_zoo_models_agree_with_the_numpy_float64_reference(name: str, options: dict) -> None:
    net = convc.models.get(name, **options)
    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape)
    model = convc.compile(net, backend="onnxruntime", threads=1)
    expected = convc.compile(net, opt_level=0, dtype="float64").run(x)[0]
    out = model(x.astype(np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert rel_err(out, expected) <= budget("float32", whole_model=True)
    assert model.threads == 1 and model._session.get_session_options().intra_op_num_threads == 1


@pytest.mark.parametrize("options,match", [({"threads": 0}, "threads=0"), ({"fast": True}, "fast"),
                                           ({"graph_optimization": "max"}, "graph_optimization")])
def test_bad_options_name_themselves(options: dict, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        convc.compile(convc.models.get("lenet5"), backend="onnxruntime", **options)


def test_float64_is_refused_with_the_dtypes_it_runs() -> None:
    with pytest.raises(BackendError, match="float32"):
        convc.compile(convc.models.get("lenet5"), backend="onnxruntime", dtype="float64")


def test_a_wrong_input_shape_names_the_input() -> None:
    model = convc.compile(convc.models.get("lenet5"), backend="onnxruntime")
    with pytest.raises(BackendError, match="expected shape"):
        model(np.zeros((1, 1, 5, 5), np.float32))


def test_convc_check_and_bench_take_it(capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "lenet5", "--backends", "numpy,onnxruntime"]) == 0
    assert main(["bench", "lenet5", "--backends", "numpy,onnxruntime", "--repeat", "3",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime" in out
