"""PyTorch nn.Module -> convc Network, with the module's weights under its state_dict keys.

    net = from_torch(model.eval(), torch.randn(1, 3, 224, 224))
    compiled = convc.compile(net, backend="numpy")

The module is traced with torch.fx.symbolic_trace; a forward that symbolic tracing cannot follow (control
flow on shapes, say) is captured with torch._dynamo.export instead. The import has inference semantics:
batch norm uses its running statistics and dropout is the identity, as after `model.eval()`.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import chain
from typing import Any

import torch
from torch import fx, nn

from convc.dsl import Network
from convc.errors import OptionError
from convc.frontends.building import FrontendError
from convc.frontends.fx_convert import FxImporter
from convc.types import TensorType, check_dtype


def from_torch(module: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor], *,
               name: str | None = None) -> Network:
    """Traces `module` on `example_input` (a tensor, or a tuple for several inputs) into a Network.

    Every unsupported module or function is listed, with its path in the model, in one FrontendError.
    """
    if not isinstance(module, nn.Module):
        raise OptionError(f"from_torch() takes a torch.nn.Module, got {type(module).__name__}")
    examples = example_tensors(example_input)
    name = name or type(module).__name__
    if module.training:  # stacklevel 3: the caller of convc.frontends.from_torch, the usual entry
        warnings.warn(f"{name} is in training mode; convc imports it with inference semantics (batch norm "
                      f"running statistics, no dropout), as after model.eval()", stacklevel=3)
    gm, root = trace(module, examples, name)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    input_types: dict[str, TensorType] = {}
    constants: dict[str, Any] = {}
    for i, node in enumerate(placeholders):
        if i < len(examples):
            input_types[node.name] = tensor_type(examples[i], f"example input {i}")
        elif node.args:  # a forward() argument left at its default value
            constants[node.name] = node.args[0]
        else:
            raise OptionError(f"{name}.forward() takes {len(placeholders)} inputs but {len(examples)} "
                              f"example input(s) were given")
    importer = FxImporter(gm, input_types=input_types, constants=constants, root=root,
                          param_keys=state_dict_keys(module), name=name,
                          header=f"cannot import {type(module).__name__} '{name}'")
    return importer.run()


def example_tensors(example_input: Any) -> tuple[torch.Tensor, ...]:
    examples = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    if not examples or not all(isinstance(t, torch.Tensor) for t in examples):
        raise OptionError("example_input must be a tensor or a tuple of tensors, e.g. "
                          "torch.randn(1, 3, 224, 224)")
    return examples


def tensor_type(t: torch.Tensor, what: str) -> TensorType:
    if not t.is_floating_point():
        raise OptionError(f"{what} has dtype {t.dtype}; convc graphs take floating-point inputs")
    return TensorType(tuple(t.shape), check_dtype(str(t.dtype), what=f"{what} dtype"))


def state_dict_keys(module: nn.Module) -> dict[int, str]:
    """id(tensor) -> its state_dict key; a tensor under several names (tied weights) keeps the first."""
    named = chain(module.named_parameters(remove_duplicate=False),
                  module.named_buffers(remove_duplicate=False))
    keys: dict[int, str] = {}
    for key, t in named:
        keys.setdefault(id(t), key)
    return keys


def trace(module: nn.Module, examples: tuple[torch.Tensor, ...],
          name: str) -> tuple[fx.GraphModule, nn.Module]:
    """(graph module, the module its call_module/get_attr targets live in)."""
    try:
        return fx.symbolic_trace(module), module
    except Exception as fx_error:  # symbolic tracing cannot follow this forward(): try dynamo's capture
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gm = torch._dynamo.export(module)(*examples).graph_module
            return gm, gm
        except Exception as dynamo_error:
            raise FrontendError(
                f"cannot trace {name}: torch.fx.symbolic_trace failed ({type(fx_error).__name__}: "
                f"{fx_error}) and so did torch._dynamo.export ({type(dynamo_error).__name__}: "
                f"{dynamo_error}); "
                f"data-dependent control flow cannot be compiled") from None
