"""Shared helpers for the zoo tests: weightless builds for shape and count checks, and small options.

A full-size VGG or ResNet-152 draws 60-140M random weights (seconds each); counts, shapes and MACs do
not depend on the values, so those tests build with every parameter a zero-stride broadcast of 0.0,
which costs no memory and no time.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest

import convc.models
from convc.dsl import Network
from convc.summary import Summary, summarize

# Options that make every zoo model small enough to run in well under a second or two.
SMALL_OPTIONS: dict[str, dict[str, Any]] = {
    "lenet5": {"batch": 2},
    "alexnet": {"input_size": 67, "num_classes": 10},
    "zfnet": {"input_size": 64, "num_classes": 10},
    "nin": {"input_size": 67, "num_classes": 10},
    "googlenet": {"input_size": 64, "num_classes": 10},
    "alphago_policy": {"k": 32, "batch": 2},
    "text_cnn": {"embedding": 50, "input_size": 20, "batch": 2},
    "c3d": {"width": 0.125, "input_size": (16, 32, 32), "num_classes": 10},
}
for _name in convc.models.names():
    if _name.startswith(("vgg", "resnet")):
        SMALL_OPTIONS[_name] = {"input_size": 32, "num_classes": 10}


def _zero_param(self: Network, pname: str, slot: str, shape: tuple[int, ...], how: str | None) -> np.ndarray:
    return np.broadcast_to(np.float32(0.0), shape)


@lru_cache(maxsize=None)
def _weightless(name: str, options: tuple[tuple[str, Any], ...]) -> Network:
    patch = pytest.MonkeyPatch()
    patch.setattr(Network, "_init_param", _zero_param)
    try:
        return convc.models.get(name, **dict(options))
    finally:
        patch.undo()


def weightless(name: str, **options: Any) -> Network:
    """The model with all-zero, read-only parameters (cached: do not modify the result)."""
    return _weightless(name, tuple(sorted(options.items())))


def weightless_summary(name: str, **options: Any) -> Summary:
    return summarize(weightless(name, **options).graph)


def trainable_params(net: Network) -> int:
    """What torchvision counts (model.parameters()): batch-norm running statistics are buffers."""
    return sum(a.size for k, a in net.graph.params.items()
               if not k.endswith((".running_mean", ".running_var")))

