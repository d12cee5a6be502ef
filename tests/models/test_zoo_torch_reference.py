"""The zoo against hand-written torch.nn models (tests/torch_zoo.py) in torchvision's layout: the same
state_dict keys and shapes, and the same outputs once the torch model's random weights are loaded.

Torch runs in float64; convc runs on the NumPy backend in float64 with no passes (opt_level=0), so any
difference is the model definition's; two tests also run the default pass pipeline in float32.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch_zoo
from torch import nn
from zoo_helpers import weightless

import convc
import convc.models
from convc.numerics import budget, rel_err

RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
VGGS = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def reference(name: str, num_classes: int = 1000, input_size: int | None = None) -> nn.Module:
    if name.startswith("resnet"):
        return torch_zoo.resnet(name, num_classes)
    if name.startswith("vgg"):
        return torch_zoo.vgg(name, num_classes, input_size or 224)
    if name == "alexnet":
        return torch_zoo.AlexNet(num_classes, input_size or 227)
    assert name == "googlenet"
    return torch_zoo.GoogLeNet(num_classes)


def shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith(".num_batches_tracked")}


@pytest.mark.parametrize("name", RESNETS + VGGS + ["alexnet", "googlenet"])
def test_state_dict_keys_and_shapes_equal_torchs(name: str) -> None:
    with torch.device("meta"):  # full size, but no memory: only the keys and shapes are compared
        torch_model = reference(name)
    assert shapes(weightless(name).state_dict()) == shapes(torch_model.state_dict())


def run_both(name: str, input_size: int, batch: int = 1, seed: int = 0, **compile_options: Any
             ) -> tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    torch_model = reference(name, num_classes=10, input_size=input_size)
    torch_zoo.randomize_batch_norm(torch_model, seed)
    net = convc.models.get(name, num_classes=10, input_size=input_size, batch=batch)
    net.load_state_dict(torch_model.state_dict())
    x = np.random.default_rng(seed).standard_normal((batch, 3, input_size, input_size))
    with torch.no_grad():
        expected = torch_model.double().eval()(torch.from_numpy(x)).numpy()
    options = {"dtype": "float64", "opt_level": 0, "check_numerics": False, **compile_options}
    (actual,) = convc.compile(net, backend="numpy", **options).run(x)
    return actual, expected


@pytest.mark.parametrize("name, input_size, batch", [
    ("resnet18", 64, 2), ("resnet50", 64, 1), ("vgg11_bn", 32, 1), ("vgg16", 32, 2), ("alexnet", 67, 2),
    ("googlenet", 64, 1),
])
def test_outputs_equal_torchs(name: str, input_size: int, batch: int) -> None:
    actual, expected = run_both(name, input_size, batch)
    assert np.abs(expected).max() > 1e-3  # a meaningful output, not a collapsed one
    assert rel_err(actual, expected) < budget("float64", whole_model=True)


def test_resnet18_through_the_default_pipeline_in_float32() -> None:
    actual, expected = run_both("resnet18", 64, 1, seed=1, dtype="float32", opt_level=2,
                                check_numerics="plugins")
    assert rel_err(actual, expected) < budget("float32", whole_model=True)


def test_torch_weights_load_by_name_and_a_wrong_one_is_named() -> None:
    net = convc.models.get("resnet18", num_classes=10, input_size=32)
    state = torch_zoo.resnet("resnet18", num_classes=10).state_dict()
    net.load_state_dict(state)
    assert np.array_equal(net.graph.params["layer2.0.downsample.0.weight"],
                          state["layer2.0.downsample.0.weight"].numpy())
    state["fc.weight"] = torch.zeros(11, 512)
    with pytest.raises(convc.ParameterError, match=r"fc.weight: got \(11, 512\), expected \(10, 512\)"):
        net.load_state_dict(state)


@pytest.mark.slow
def test_resnet152_at_full_size_through_the_default_pipeline_equals_torch() -> None:
    # The one full-size run: 11.5 GMACs, so float32 (twice as fast as float64 on the NumPy backend).
    actual, expected = run_both("resnet152", 224, 1, seed=2, dtype="float32", opt_level=2)
    assert rel_err(actual, expected) < budget("float32", whole_model=True)
