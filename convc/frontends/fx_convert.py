"""torch.fx graph -> convc Network: the walk that from_torch and the torch.compile backend share.

    importer = FxImporter(gm, root=module, input_types={"x": TensorType((1, 3, 32, 32))},
                          header="cannot import MyNet")
    net = importer.run()     # every unsupported module or function is reported in one FrontendError

Each fx node becomes one of: a convc `Value` (a tensor computed at run time), a `Const` (a tensor known
at import: parameter, buffer or folded constant) or a plain Python value (a size, a shape tuple). A node
whose operands hold no `Value` is folded: it runs in eager PyTorch, once, at import.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import fx

from convc.dsl import Network, Value
from convc.errors import ConvcError
from convc.frontends import torch_functions, torch_modules
from convc.frontends.building import ImportedNetwork, Problems, fresh_layer_name
from convc.frontends.torch_context import Const, Ctx, Handler, Unusable, describe_value
from convc.frontends.lazy_layout import LAZY_VALUES
from convc.types import TensorType


def target_name(target: Any) -> str:
    """'torch.nn.functional.relu', 'torch.conv2d', 'operator.add', 'aten.conv2d.default', ..."""
    if isinstance(target, str):
        return target
    if isinstance(target, torch._ops.OpOverload):
        return f"aten.{target.__name__}" if target.namespace == "aten" else str(target)
    short = getattr(target, "__name__", "")
    if short and getattr(torch.nn.functional, short, None) is target:  # torch._C._nn.gelu is F.gelu
        return f"torch.nn.functional.{short}"
    try:
        name = fx.node._get_qualified_name(target)
    except Exception:  # an odd callable: still name it
        name = getattr(target, "__qualname__", None) or repr(target)
    return re.sub(r"^_operator\.", "operator.", name)


def module_path(node: fx.Node) -> tuple[str, type | None]:
    """The dotted path of the innermost module a node was traced in ('' at the top) and its class."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return "", None
    path, cls = list(stack.values())[-1]
    return clean_path(str(path)), cls if isinstance(cls, type) else None


def clean_path(path: str) -> str:
    """Dynamo spells module paths "L['self'].layer1._modules['0'].conv1": make it 'layer1.0.conv1'."""
    path = re.sub(r"^L\['self'\]|^L__self___?", "", path)
    path = re.sub(r"\._(?:modules|parameters|buffers)\['([^']*)'\]", r".\1", path)
    path = re.sub(r"\['([^']*)'\]|\[(\d+)\]", lambda m: "." + (m.group(1) or m.group(2)), path)
    return path.strip(".")


def _flat(v: Any) -> list[Any]:
    if isinstance(v, (list, tuple)):
        return [i for x in v for i in _flat(x)]
    if isinstance(v, dict):
        return [i for x in v.values() for i in _flat(x)]
    return [v]


def _to_eager(v: Any) -> Any:
    if isinstance(v, Const):
        return v.tensor
    if isinstance(v, tuple) and hasattr(v, "_fields"):  # a named tuple takes its fields positionally
        return type(v)(*(_to_eager(i) for i in v))
    if isinstance(v, (list, tuple)):
        return type(v)(_to_eager(i) for i in v)
    return v


def _from_eager(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return Const(v.detach())
    if isinstance(v, torch.Size):
        return v
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return type(v)(*(_from_eager(i) for i in v))
    if isinstance(v, (list, tuple)):
        return type(v)(_from_eager(i) for i in v)
    return v


class FxImporter:
    """Walks an fx graph in order, converting each node through the handler tables."""

    def __init__(self, gm: fx.GraphModule, *, input_types: Mapping[str, TensorType],
                 constants: Mapping[str, Any] | None = None, root: torch.nn.Module | None = None,
                 param_keys: Mapping[int, str] | None = None, name: str = "net", header: str = "") -> None:
        self.gm = gm
        self.root = root if root is not None else gm
        self.input_types = dict(input_types)
        self.constants = dict(constants or {})
        self.param_keys = dict(param_keys or {})  # id(tensor) -> state_dict key
        self.net = ImportedNetwork(name)
        self.problems = Problems(header or f"cannot import '{name}'")
        self.reserved = set(self.param_keys.values())
        self.functions: dict[Any, Handler] = torch_functions.FUNCTIONS
        self.methods: dict[str, Handler] = torch_functions.METHODS
        self.modules: dict[type, Handler] = torch_modules.MODULES
        self.env: dict[fx.Node, Any] = {}

    # ------------------------------------------------------------------ the walk
    def run(self) -> Network:
        outputs: list[Any] = []
        for node in self.gm.graph.nodes:
            if node.op == "output":
                outputs = _flat(fx.node.map_arg(node.args[0], self.env.__getitem__))
            else:
                self.env[node] = self.convert(node)
        values = [o for o in outputs if isinstance(o, Value)]
        if not self.problems and len(values) != len(outputs):
            bad = [describe_value(o) for o in outputs if not isinstance(o, Value)]
            self.problems.add("output", f"the model returns {', '.join(bad)}; convc graphs return tensors "
                                        f"computed from the inputs")
        self.problems.raise_if_any()
        self.net.output(*values)
        return self.net

    def convert(self, node: fx.Node) -> Any:
        """The node's value; a failure is recorded in self.problems and gives an Unusable."""
        if node.op == "placeholder":
            return self._placeholder(node)
        if node.op == "get_attr":
            return self._get_attr(node)
        args = fx.node.map_arg(node.args, self.env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, self.env.__getitem__)
        where = self.where(node)
        handler, module = self.handler_for(node)
        operands = _flat((args, kwargs))
        broken = [o for o in operands if isinstance(o, Unusable)]
        if broken:
            if handler is None:
                self.problems.add(where, "not supported", unsupported=True)
            for b in broken:
                if not b.reported:
                    self.problems.add(where, f"reads {b.why}")
            return self._failed(node)
        if not any(isinstance(o, (Value, *LAZY_VALUES)) for o in operands):
            return self._fold(node, module, args, kwargs, where)
        if handler is None:
            self.problems.add(where, "not supported", unsupported=True)
            return self._failed(node)
        ctx = Ctx(self.net, self.layer_name(node), where, self.reserved)
        call_args = (ctx, module, node.target, *args) if module is not None else (ctx, *args)
        try:
            inspect.signature(handler).bind(*call_args, **kwargs)
        except TypeError as e:  # the call's arguments do not fit the torch signature the handler mirrors
            self.problems.add(where, f"unexpected arguments ({e})")
            return self._failed(node)
        try:
            return handler(*call_args, **kwargs)
        except ConvcError as e:
            self.problems.add(where, str(e))
        return self._failed(node)

    @staticmethod
    def _failed(node: fx.Node) -> Unusable:
        return Unusable(f"the output of '{node.name}'", reported=True)

    def handler_for(self, node: fx.Node) -> tuple[Handler | None, torch.nn.Module | None]:
        if node.op == "call_module":
            module = self.root.get_submodule(node.target)
            return self.modules.get(type(module)), module
        if node.op == "call_method":
            return self.methods.get(node.target), None
        try:
            handler = self.functions.get(node.target)
        except TypeError:  # an unhashable target
            return None, None
        # Functions of optional packages (torchvision) are registered by name: importing them is optional.
        return handler or self.functions.get(target_name(node.target)), None

    # ------------------------------------------------------------------ leaves
    def _placeholder(self, node: fx.Node) -> Any:
        if node.name in self.constants or node.target in self.constants:
            return self.convert_constant(self.constants.get(node.name, self.constants.get(node.target)))
        t = self.input_types.get(node.name, self.input_types.get(node.target))
        if t is None:
            self.problems.add(f"input '{node.name}'", "no example input was given for it")
            return self._failed(node)
        name = fresh_layer_name(self.net, str(node.target), self.reserved)
        return self.net.input(t.shape, t.dtype, name=name)

    def convert_constant(self, value: Any, key: str | None = None) -> Any:
        """A tensor known at import becomes a Const named `key` (or its state_dict key); others pass."""
        if isinstance(value, torch.Tensor):
            return Const(value.detach(), self.param_keys.get(id(value), key))
        return value

    def _get_attr(self, node: fx.Node) -> Any:
        obj: Any = self.root
        try:
            for part in str(node.target).split("."):
                obj = getattr(obj, part)
        except AttributeError:
            self.problems.add(f"attribute '{node.target}'", "not found on the model")
            return self._failed(node)
        if isinstance(obj, torch.Tensor):
            return Const(obj.detach(), self.param_keys.get(id(obj), str(node.target)))
        return obj

    def _fold(self, node: fx.Node, module: torch.nn.Module | None, args: Any, kwargs: Any,
              where: str) -> Any:
        """Runs a node that reads no run-time tensor in eager PyTorch (sizes, constant arithmetic)."""
        try:
            with torch.no_grad():
                if node.op == "call_module":
                    out = module(*_to_eager(args), **_to_eager(kwargs))
                elif node.op == "call_method":
                    self_, *rest = _to_eager(args)
                    out = getattr(self_, node.target)(*rest, **_to_eager(kwargs))
                else:
                    out = node.target(*_to_eager(args), **_to_eager(kwargs))
        except Exception as e:  # the user's own constant code failed: say where
            self.problems.add(where, f"failed to evaluate at import: {type(e).__name__}: {e}")
            return self._failed(node)
        return _from_eager(out)

    # ------------------------------------------------------------------ names
    def where(self, node: fx.Node) -> str:
        path, _ = module_path(node)
        if node.op == "call_module":
            module = self.root.get_submodule(node.target)
            return f"module '{node.target}' ({type(module).__module__}.{type(module).__name__})"
        kind = "method Tensor." if node.op == "call_method" else "function "
        inside = f" in '{path}'" if path else ""
        return f"{kind}{target_name(node.target)}{inside} (node '{node.name}')"

    def layer_name(self, node: fx.Node) -> str:
        """Module calls keep their path ('features.0'); functions inside torch.nn leaf modules (as
        dynamo records them) take the module's path, the others '<path>.<node name>'."""
        if node.op == "call_module":
            base = str(node.target)
        else:
            path, cls = module_path(node)
            leaf = cls is not None and cls.__module__.startswith("torch.nn") and not issubclass(
                cls, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict))
            base = path if path and leaf else ".".join(p for p in (path, node.name) if p)
        return fresh_layer_name(self.net, base, self.reserved)
