"""convc: a plugin-based compiler from convolutional network graphs to optimized kernels.

    import convc
    net = convc.models.get("resnet18")          # or write one with convc.Network
    model = convc.compile(net, backend="numpy")
    y = model(x)
"""
from __future__ import annotations

from convc.compiler import compile
from convc.dsl import Network, Value
from convc.errors import (
    BackendError,
    ConvcError,
    DefinitionError,
    GraphError,
    OptionError,
    ParameterError,
    PassError,
    PluginError,
)
from convc.ir import Graph, Node
from convc.serialize import load, save
from convc.types import TensorType

__version__ = "0.1.0"


def __getattr__(name: str):
    import importlib

    if name in ("models", "frontends"):
        return importlib.import_module(f"convc.{name}")
    if name in ("from_torch", "from_onnx"):
        return getattr(importlib.import_module("convc.frontends"), name)
    if name in ("save_compiled", "load_compiled"):
        return getattr(importlib.import_module("convc.artifact"), name)
    if name == "to_onnx":
        return importlib.import_module("convc.frontends.onnx_export").to_onnx
    raise AttributeError(f"module 'convc' has no attribute {name!r}")

__all__ = [
    "BackendError", "ConvcError", "DefinitionError", "Graph", "GraphError", "Network", "Node",
    "OptionError", "ParameterError", "PassError", "PluginError", "TensorType", "Value", "compile",
    "from_onnx", "from_torch", "load", "load_compiled", "models", "save", "save_compiled", "to_onnx",
]
