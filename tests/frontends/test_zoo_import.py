"""The issue's bar: ResNet, VGG, AlexNet and GoogLeNet written in torch (tests/torch_zoo.py) come out of
from_torch and of torch.onnx.export + from_onnx computing what torch computes, in float64."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from frontend_helpers import assert_matches, run_convc, torch_reference
from torch import nn

from convc.frontends import from_onnx, from_torch

torch_zoo = pytest.importorskip("torch_zoo")

ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resnet18": (lambda: torch_zoo.resnet("resnet18", num_classes=10), (1, 3, 64, 64)),
    "resnet50": (lambda: torch_zoo.resnet("resnet50", num_classes=10), (1, 3, 64, 64)),
    "vgg11_bn": (lambda: torch_zoo.vgg("vgg11_bn", num_classes=10, input_size=32), (2, 3, 32, 32)),
    "alexnet": (lambda: torch_zoo.AlexNet(num_classes=10, input_size=127), (1, 3, 127, 127)),
    "googlenet": (lambda: torch_zoo.GoogLeNet(num_classes=10), (1, 3, 64, 64)),
}
SLOW = {"resnet50", "googlenet"}


def zoo_params() -> list[object]:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in ZOO]


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    factory, shape = ZOO[name]
    torch.manual_seed(0)
    model = factory().double().eval()
    torch_zoo.randomize_batch_norm(model)
    return model, torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("name", zoo_params())
def test_from_torch_matches_torch(name: str) -> None:
    model, x = build(name)
    net = from_torch(model, x)
    assert_matches(run_convc(net, x.numpy()), torch_reference(model, x))
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(net.graph.params) == expected


@pytest.mark.parametrize("name", zoo_params())
def test_from_onnx_matches_torch(name: str) -> None:
    pytest.importorskip("onnx")
    from test_onnx_import import ATTRIBUTE_PRECISION, export

    model, x = build(name)
    net = from_onnx(export(model, x, opset=13))
    assert_matches(run_convc(net, x.numpy()), torch_reference(model, x), tolerance=ATTRIBUTE_PRECISION)
