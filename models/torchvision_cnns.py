"""torchvision's convolutional classification models by name, imported with from_torch from torchvision's
own builders (weights=None; parameters named by their state_dict keys). Needs torchvision installed; the
names convc's zoo writes itself (AlexNet, VGG, GoogLeNet, ResNet) stay convc's.

    net = convc.models.get("efficientnet_b0", input_size=224)     # `convc summary efficientnet_b0`
"""
from __future__ import annotations

from convc.dsl import Network
from convc.errors import OptionError
from convc.models.catalog import example_shape, positive_int, register_model

# torchvision 0.29's CNN classifiers (not ViT, Swin, MaxViT) that convc's own zoo does not write.
TORCHVISION_CNNS = (
    "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
    "densenet121", "densenet161", "densenet169", "densenet201",
    *(f"efficientnet_b{i}" for i in range(8)), "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
    "inception_v3", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    *(f"regnet_x_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
    *(f"regnet_y_{s}" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "squeezenet1_0", "squeezenet1_1", "wide_resnet50_2", "wide_resnet101_2",
)
# Builder options torchvision needs besides weights=None (no auxiliary heads: inference graphs).
EXTRA_OPTIONS = {"inception_v3": {"aux_logits": False, "init_weights": False}}


def build_torchvision(name: str, num_classes: int = 1000, input_size: int = 224, batch: int = 1) -> Network:
    """torchvision.models.get_model(name, weights=None) through from_torch, on a (batch, 3, S, S) input."""
    try:
        import torch
        import torchvision
    except ImportError:
        raise OptionError(f"model {name!r} is torchvision's: install torchvision (pip install torchvision) "
                          f"to build it") from None
    from convc.frontends.torch_import import from_torch

    shape = (positive_int(name, "batch", batch),) + example_shape(name, input_size, 3)
    classes = positive_int(name, "num_classes", num_classes)
    model = torchvision.models.get_model(name, weights=None, num_classes=classes, **EXTRA_OPTIONS.get(name, {}))
    return from_torch(model.eval(), torch.zeros(shape), name=name)


for _name in TORCHVISION_CNNS:
    register_model(_name, "torchvision's, through from_torch (weights=None; needs torchvision)",
                   build_torchvision, imported=True)
