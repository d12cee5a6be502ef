"""The model zoo: classic CNNs written with the DSL, parameters named like torchvision's state_dicts.

    import convc.models
    convc.models.names()                              # ['lenet5', 'alexnet', ...]
    net = convc.models.get("resnet18", num_classes=10, input_size=64)
    convc.models.describe("resnet18")                 # one line, for `convc models`
    convc.models.info("resnet18").options             # {'num_classes': 1000, 'input_size': 224, ...}

Each family module registers its models with the catalog when imported here; the import order is
the catalog's order (roughly by publication date). torchvision's other CNNs follow, by name, built through
from_torch when torchvision is installed (models/torchvision_cnns.py).
"""
from __future__ import annotations

# isort: off
from convc.models import lenet, alexnet, vgg, nin, googlenet, resnet, alphago, text_cnn, c3d  # noqa: F401
from convc.models import torchvision_cnns  # noqa: F401
# isort: on
from convc.models.catalog import ModelInfo, catalog, describe, get, info, names

__all__ = ["ModelInfo", "catalog", "describe", "get", "info", "names"]
