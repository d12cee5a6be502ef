"""Frontends: models from PyTorch and ONNX, and the one loader the CLI calls.

    from convc.frontends import from_torch, from_onnx, load_model
    net = from_torch(model.eval(), torch.randn(1, 3, 224, 224))
    net = from_onnx("resnet50.onnx")
    net = load_model("resnet18")                                  # a zoo model
    net = load_model("nets/mine.py:build", input_shape=(1, 3, 32, 32))

torch and onnx are imported when first needed, so `import convc.frontends` stays cheap.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

from convc.dsl import Network
from convc.errors import ConvcError, OptionError

__all__ = ["from_onnx", "from_torch", "load_model"]


def from_torch(module: Any, example_input: Any, *, name: str | None = None) -> Network:
    """Traces a torch.nn.Module on `example_input` into a Network (see convc.frontends.torch_import)."""
    from convc.frontends.torch_import import from_torch as _from_torch

    return _from_torch(module, example_input, name=name)


def from_onnx(model: Any, *, input_shapes: Any = None, constants: Any = None,
              name: str | None = None) -> Network:
    """Imports an ONNX model (path, bytes or ModelProto) into a Network (see convc.frontends.onnx_import)."""
    from convc.frontends.onnx_import import from_onnx as _from_onnx

    return _from_onnx(model, input_shapes=input_shapes, constants=constants, name=name)


def load_model(spec: str, **options: Any) -> Network:
    """A Network from a spec, by these rules, in order (the CLI's --batch and --input become the options
    `batch` and `input_shape`, the input shape without the batch axis, like (3, 224, 224)):

    - a path ending in `.onnx`: imported with from_onnx; `input_shape` (C, *spatial), or spatial sizes
      only, and `batch` fill the model's input shape (or `input_shapes={name: full shape}`);
    - `path/to/file.py:factory`: the file is imported and `factory()` must return a torch.nn.Module, traced
      on an example input of shape (batch, *input_shape) when `input_shape` is given, else on an
      `example_input` (a tensor or a full shape) found on the returned module, on the factory, or in the
      file, checked in that order (with its batch axis set to `batch` when given);
    - anything else: a zoo name for convc.models.get (`input_shape` becomes its input_size).
    """
    options = {k: v for k, v in options.items() if v is not None}
    if not isinstance(spec, str) or not spec:
        raise OptionError(f"model spec {spec!r} must be a zoo name, a .onnx path or path/to/file.py:factory")
    batch = options.pop("batch", None)
    if batch is not None and (not isinstance(batch, int) or batch <= 0):
        raise OptionError(f"batch={batch!r} must be a positive integer")
    if spec.lower().endswith(".onnx"):
        return _load_onnx(spec, batch, options)
    path, _, factory = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if path.endswith(".py") or spec.endswith(".py"):
        return _load_python(path or spec, factory, batch, options)
    import convc.models

    shape = options.pop("input_shape", None)
    if shape is not None:
        options["input_size"] = shape[0] if len(shape) == 1 else tuple(shape)
    if batch is not None:
        options["batch"] = batch
    return convc.models.get(spec, **options)


def _load_onnx(path: str, batch: int | None, options: dict[str, Any]) -> Network:
    shapes = options.pop("input_shapes", None)
    shape = options.pop("input_shape", None)
    name = options.pop("name", None)
    _no_other_options(options, path, ("batch", "input_shape", "input_shapes", "name"))
    if shape is not None or batch is not None:
        from convc.frontends.onnx_import import OnnxImporter

        runtime = OnnxImporter(path).inputs
        if len(runtime) != 1:
            raise OptionError(f"'{path}' has {len(runtime)} inputs ({', '.join(i.name for i in runtime)}); "
                              f"give input_shapes={{name: shape}} instead of input_shape and batch")
        declared = [d.dim_value or 1 for d in runtime[0].type.tensor_type.shape.dim]
        per_example = declared[1:] if shape is None else list(shape)
        if len(per_example) == len(declared) - 2:  # spatial sizes only: keep the declared channels
            per_example = declared[1:2] + per_example
        if len(per_example) != len(declared) - 1:
            raise OptionError(f"input_shape {tuple(shape)} does not fit the rank-{len(declared)} input of "
                              f"'{path}'; give it without the batch axis, like {tuple(declared[1:])}")
        shapes = {runtime[0].name: (batch or declared[0],) + tuple(int(d) for d in per_example)}
    return from_onnx(path, input_shapes=shapes, name=name)


def _load_python(path: str, factory: str, batch: int | None, options: dict[str, Any]) -> Network:
    if not factory:
        raise OptionError(f"'{path}': name the factory that returns the model, as {path}:build_model")
    if not os.path.isfile(path):
        raise OptionError(f"model file '{path}' does not exist")
    shape = options.pop("input_shape", None)
    name = options.pop("name", None)
    _no_other_options(options, path, ("batch", "input_shape", "name"))
    module = _import_file(path)
    fn = getattr(module, factory, None)
    if not callable(fn):
        raise OptionError(f"'{path}' has no function {factory!r}; it defines "
                          f"{', '.join(n for n in vars(module) if not n.startswith('_')) or 'nothing'}")
    import torch

    try:
        model = fn()
    except Exception as e:  # the user's factory failed: name it, keep the cause
        raise ConvcError(f"{path}:{factory}() raised {type(e).__name__}: {e}") from e
    if not isinstance(model, torch.nn.Module):
        raise OptionError(f"{path}:{factory}() returned {type(model).__name__}, not a torch.nn.Module")
    full = None if shape is None else (batch or 1,) + tuple(int(d) for d in shape)
    example = _example_input(full, batch, (model, fn, module), f"{path}:{factory}")
    return from_torch(model.eval(), example, name=name or factory)


def _import_file(path: str) -> Any:
    module_name = f"convc_user_model_{abs(hash(os.path.abspath(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise OptionError(f"cannot import '{path}' as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # an error in the user's file: name the file, keep the cause
        sys.modules.pop(module_name, None)
        raise ConvcError(f"importing '{path}' raised {type(e).__name__}: {e}") from e
    return module


def _example_input(shape: Sequence[int] | None, batch: int | None, owners: tuple[Any, ...],
                   where: str) -> Any:
    import torch

    if shape is not None:
        return torch.randn(*shape)
    for owner in owners:
        example = getattr(owner, "example_input", None)
        if callable(example) and not isinstance(example, torch.Tensor):
            example = example()
        if isinstance(example, (tuple, list)) and example and all(isinstance(d, int) for d in example):
            example = torch.randn(*example)
        if isinstance(example, torch.Tensor):
            return example if batch is None else torch.randn(batch, *example.shape[1:], dtype=example.dtype)
        if isinstance(example, tuple) and example and all(isinstance(t, torch.Tensor) for t in example):
            return example if batch is None else tuple(
                torch.randn(batch, *t.shape[1:], dtype=t.dtype) for t in example)
    raise OptionError(f"{where}: no example input: pass input_shape=(C, H, W) (the CLI's --input), or define "
                      f"`example_input` (a tensor or a full shape) on the model, the factory or the file")


def _no_other_options(options: dict[str, Any], spec: str, accepted: tuple[str, ...]) -> None:
    if options:
        raise OptionError(f"options {', '.join(sorted(options))} do not apply to '{spec}'; it accepts "
                          f"{', '.join(accepted)}")
