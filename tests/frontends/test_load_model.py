"""load_model: the CLI's one entry for zoo names, .onnx files and path/to/file.py:factory specs."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import convc
from convc.frontends import load_model

MODEL_FILE = '''
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1), 1))

def build():
    return Tiny()

def build_with_example():
    model = Tiny()
    model.example_input = torch.randn(2, 3, 6, 6)
    return model

def build_factory_shape():
    return Tiny()
build_factory_shape.example_input = (1, 3, 5, 5)

def not_a_model():
    return 42
'''


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(MODEL_FILE))
    return path


def test_python_factory_with_an_input_shape(model_file: Path) -> None:
    """input_shape leaves out the batch axis, as the CLI's --input does; batch sets it (default 1)."""
    net = load_model(f"{model_file}:build", input_shape=(3, 7, 7), batch=2)
    assert net.graph.inputs[0].type.shape == (2, 3, 7, 7)
    net = load_model(f"{model_file}:build", input_shape=(3, 8, 8))
    assert net.graph.inputs[0].type.shape == (1, 3, 8, 8)
    assert {"conv.weight", "conv.bias", "fc.weight", "fc.bias"} == set(net.graph.params)
    assert net.name == "build"


@pytest.mark.parametrize("factory, shape", [("build_with_example", (2, 3, 6, 6)),
                                            ("build_factory_shape", (1, 3, 5, 5))])
def test_python_factory_example_input_attribute(model_file: Path, factory: str, shape: tuple) -> None:
    assert load_model(f"{model_file}:{factory}").graph.inputs[0].type.shape == shape
    assert load_model(f"{model_file}:{factory}", batch=4).graph.inputs[0].type.shape == (4,) + shape[1:]


def test_python_factory_outputs_match_the_module(model_file: Path) -> None:
    net = load_model(f"{model_file}:build", input_shape=(3, 8, 8))
    # the factory builds a fresh module each call: rebuild with the traced weights to compare
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_check", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.graph.params.items()})
    x = torch.randn(1, 3, 8, 8)
    expected = model(x).detach().numpy()
    np.testing.assert_allclose(convc.compile(net, backend="numpy").run(x.numpy())[0], expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("spec, fragment", [
    ("{file}", "name the factory"),
    ("{file}:missing", "has no function 'missing'"),
    ("{file}:not_a_model", "returned int, not a torch.nn.Module"),
    ("{file}:build", "no example input"),
    ("{dir}/absent.py:build", "does not exist"),
])
def test_python_spec_mistakes_are_option_errors(model_file: Path, spec: str, fragment: str) -> None:
    with pytest.raises(convc.ConvcError, match=fragment):
        load_model(spec.format(file=model_file, dir=model_file.parent))


def test_onnx_path_with_an_input_shape(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert load_model(str(path)).graph.inputs[0].type.shape == (1, 3, 4, 4)
    assert load_model(str(path), batch=5).graph.inputs[0].type.shape == (5, 3, 4, 4)
    assert load_model(str(path), input_shape=(3, 6, 6)).graph.inputs[0].type.shape == (1, 3, 6, 6)
    assert load_model(str(path), input_shape=(2, 8), batch=2).graph.inputs[0].type.shape == (2, 3, 2, 8)
    with pytest.raises(convc.OptionError, match="without the batch axis"):
        load_model(str(path), input_shape=(1, 2, 3, 4, 5))
    with pytest.raises(convc.OptionError, match="do not apply"):
        load_model(str(path), num_classes=3)


def test_zoo_names_go_to_the_model_catalog() -> None:
    models = pytest.importorskip("convc.models")
    name = models.names()[0]
    net = load_model(name)
    assert isinstance(net, convc.Network)
    with pytest.raises(convc.ConvcError):
        load_model("no_such_model_anywhere")


def test_an_empty_spec_is_an_option_error() -> None:
    with pytest.raises(convc.OptionError):
        load_model("")

