"""The zoo's catalog: names, descriptions, options, and errors that say what is accepted."""
from __future__ import annotations

from typing import Any

import convc.models
import numpy as np
import pytest
from zoo_helpers import SMALL_OPTIONS, weightless

import convc
from convc.errors import OptionError

REQUIRED = ["lenet5", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19", "nin", "googlenet", "resnet18",
            "resnet34", "resnet50", "resnet101", "resnet152", "alphago_policy", "text_cnn", "c3d"]


def test_names_cover_the_zoo_and_each_has_a_one_line_description() -> None:
    names = convc.models.names()
    assert set(REQUIRED) <= set(names)
    assert len(names) == len(set(names))
    for name in names:
        text = convc.models.describe(name)
        assert text and "\n" not in text and len(text) <= 110, name


def test_options_are_the_builders_keyword_defaults() -> None:
    options = convc.models.info("resnet50").options
    assert options == {"num_classes": 1000, "input_size": 224, "batch": 1, "seed": 0, "dtype": "float32"}
    assert convc.models.info("alphago_policy").options["k"] == 192
    assert convc.models.info("c3d").options["width"] == 1.0


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(OptionError, match="unknown model 'resnet19'; did you mean 'resnet18'.*known models: "
                                          ".*resnet18.*c3d"):
        convc.models.get("resnet19")
    with pytest.raises(OptionError, match="unknown model 'zzz'; known models: lenet5"):  # nothing close
        convc.models.get("zzz")


@pytest.mark.parametrize("spelling", ["ResNet18", "RESNET18", "resnet-18", "ResNet_18"])
def test_model_names_are_case_insensitive(spelling: str) -> None:
    net = convc.models.get(spelling, init=False)
    assert net.name == "resnet18" and convc.models.info(spelling).name == "resnet18"


def test_unknown_option_names_it_and_lists_the_accepted_ones() -> None:
    with pytest.raises(OptionError) as e:
        convc.models.get("vgg16", depth=3)
    assert "model 'vgg16' has no option depth" in str(e.value)
    assert "num_classes=1000, input_size=224, batch=1, seed=0, dtype='float32'" in str(e.value)


@pytest.mark.parametrize("name, options, message", [
    ("resnet18", {"num_classes": 0}, "num_classes=0 must be a positive int"),
    ("resnet18", {"batch": True}, "batch=True must be a positive int"),
    ("lenet5", {"seed": -1}, "seed=-1 must be a non-negative int"),
    ("lenet5", {"dtype": "int8"}, "dtype 'int8' is not supported; choose one of float16"),
    ("lenet5", {"input_size": (32, 32, 32, 32)}, "input_size=(32, 32, 32, 32) must be a positive int"),
    ("lenet5", {"input_size": 0}, "input_size=0 must be a positive int"),
    ("alphago_policy", {"k": 0}, "'alphago_policy': k=0 must be a positive int"),
    ("c3d", {"width": -1.0}, "'c3d': width=-1.0 must be a positive number"),
    ("text_cnn", {"maps": 2.5}, "'text_cnn': maps=2.5 must be a positive int"),
])
def test_bad_option_values_name_the_model_and_option(name: str, options: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convc.models.get(name, **options)


def test_an_input_too_small_names_the_layer_it_breaks() -> None:
    # AlexNet on 32x32: conv1 gives 6x6, pool1 3x3 (here 2x2), conv2 keeps it, and pool2's 3x3 window
    # no longer fits: the error must say which layer and that the options caused it.
    with pytest.raises(OptionError, match=r"model 'alexnet' cannot be built with input_size=32: "
                                          r"max_pool2d 'features.6': kernel 3x3 does not fit input 2x2"):
        convc.models.get("alexnet", input_size=32)


def test_options_shape_the_input_and_output() -> None:
    net = convc.models.get("resnet18", num_classes=7, input_size=(3, 40, 48), batch=3, dtype="float64")
    (x,) = net.graph.inputs
    assert x.type == convc.TensorType((3, 3, 40, 48), "float64")
    assert net.graph.node(net.graph.outputs[0]).type.shape == (3, 7)
    net = convc.models.get("lenet5", input_size=(3, 32, 32))  # a full (C, H, W) sets the channels too
    assert net.graph.inputs[0].type.shape == (1, 3, 32, 32)
    net = convc.models.get("text_cnn", input_size=(20, 30), num_classes=4)
    assert net.graph.inputs[0].type.shape == (1, 20, 30)
    assert net.graph.node(net.graph.outputs[0]).type.shape == (1, 4)


def test_parameters_are_seeded() -> None:
    a = convc.models.get("lenet5", seed=1).state_dict()
    b = convc.models.get("lenet5", seed=1).state_dict()
    c = convc.models.get("lenet5", seed=2).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])


@pytest.mark.parametrize("name", sorted(SMALL_OPTIONS))
def test_every_model_builds_small_and_verifies(name: str) -> None:
    options = SMALL_OPTIONS[name]
    net = weightless(name, **options)  # running them is test_zoo_backends' job
    net.graph.verify()
    assert net.name == name
    (out,) = net.graph.outputs
    batch = options.get("batch", 1)
    classes = options.get("num_classes", convc.models.info(name).options.get("num_classes", 361))
    assert net.graph.node(out).type.shape == (batch, classes)


def test_every_registered_model_has_small_options() -> None:
    assert set(SMALL_OPTIONS) == set(convc.models.names())
