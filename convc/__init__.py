"""convc: a plugin-based compiler from convolutional network graphs to optimized kernels.

    import convc
    net = convc.models.get("resnet18")          # or write one with convc.Network
    model = convc.compile(net, backend="numpy")
    y = model(x)
"""
from __future__ import annotations

from convc.compiler import compile
from convc.dsl import Network, Value
from convc.errors import (BackendError, ConvcError, DefinitionError, GraphError, OptionError,
                          ParameterError, PassError, PluginError)
from convc.ir import Graph, Node
from convc.serialize import load, save
from convc.types import TensorType

__version__ = "0.1.0"

__all__ = [
    "BackendError", "ConvcError", "DefinitionError", "Graph", "GraphError", "Network", "Node",
    "OptionError", "ParameterError", "PassError", "PluginError", "TensorType", "Value", "compile", "load", "save",
]
