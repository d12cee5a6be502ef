"""`torch.compile(model, backend="convc")`: the parts of a captured graph convc supports run through a
convc backend; the rest stays in eager PyTorch, and a warning lists what fell back and why.

    model = torch.compile(net.eval(), backend="convc", options={"backend": "numpy"})
    y = model(x)           # convolutions, pools, ... on convc's NumPy backend; anything else in torch

Options: "backend" (a convc backend name, default "numpy") and "dtype" (default: the inputs' dtype).
A new batch size (dynamo then captures the graph with a symbolic batch) reuses the compiled module: each
input shape gets its own convc compile on first use, kept for the next call (`PerShape`).
Inference only: convc subgraphs do not record autograd history. Weights are read when a subgraph is
compiled and re-read if a parameter changes in place (its version counter moves).
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from convc.dsl import Value
from convc.errors import ConvcError
from convc.frontends.fx_convert import FxImporter, clean_path
from convc.frontends.lazy_layout import LAZY_VALUES, ChannelGroups, Permuted
from convc.frontends.torch_context import Unusable
from convc.types import TensorType, check_dtype


def convc_dynamo_backend(gm: fx.GraphModule, example_inputs: list[Any],
                         options: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """A torch.compile backend (registered as "convc" through the torch_dynamo_backends entry point)."""
    if any(_is_symbolic(e) for e in example_inputs):
        return PerShape(gm, dict(options or {}))
    options = dict(options or {})
    backend = str(options.pop("backend", "numpy"))
    dtype = options.pop("dtype", None)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    examples = dict(zip(placeholders, example_inputs))
    weights = {n.name: e for n, e in examples.items() if _is_weight(n, e)}
    known = {n.name: examples.get(n, n.meta.get("example_value")) for n in gm.graph.nodes}
    keys = {n.name: _state_key(n) for n in placeholders if n.name in weights}
    support = _ConvcSupport(gm, weights, keys)
    partitioner = CapabilityBasedPartitioner(gm, support, allows_single_node_partition=True)
    partitions = _without_unsupported(partitioner.propose_partitions(), support)
    if support.fallbacks:
        listed = "\n  ".join(f"{where}: {why}" for where, why in support.fallbacks.items())
        count = len(support.fallbacks)
        warnings.warn(f"convc: {count} op(s) run in eager PyTorch:\n  {listed}", stacklevel=2)
    if not partitions:
        return gm.forward
    fused = partitioner.fuse_partitions(partitions)
    for node in list(fused.graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("fused_"):
            sub = fused.get_submodule(node.target)
            runner = ConvcSubgraph(sub, known, weights, keys, backend, dtype, options)
            setattr(fused, str(node.target), runner)
    fused.recompile()
    return fused.forward


class PerShape:
    """A captured graph with symbolic shapes: dynamo captures one when a compiled model meets a second batch
    size. Each concrete combination of input shapes gets its own convc compile of the graph, made on first
    use (from one eager run that records every value's shape) and kept, so a new batch size runs on convc
    instead of falling back to eager PyTorch."""

    def __init__(self, gm: fx.GraphModule, options: dict[str, Any]) -> None:
        self.gm = gm
        self.options = options
        self.compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}

    def __call__(self, *args: Any) -> Any:
        key = tuple(tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args)
        if key not in self.compiled:
            self.compiled[key] = convc_dynamo_backend(concrete_copy(self.gm, args), list(args), self.options)
        return self.compiled[key](*args)


class _Recorder(fx.Interpreter):
    """Runs a graph once, recording each node's value as its example (a concrete shape for every node)."""

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        n.meta["example_value"] = value
        return value


def concrete_copy(gm: fx.GraphModule, args: tuple[Any, ...]) -> fx.GraphModule:
    """A copy of `gm` (node metadata copied, not shared) whose example values are those of `args`."""
    import copy

    concrete = fx.GraphModule(gm, copy.deepcopy(gm.graph))
    with torch.no_grad():
        _Recorder(concrete).run(*args)
    return concrete


def _without_unsupported(partitions: list[Any], support: _ConvcSupport) -> list[Any]:
    """The partitioner pulls every getitem into its producer's partition, tensor slicing included: drop
    such unsupported nodes, and the partition's nodes downstream of them, back to eager."""
    kept = []
    order: dict[fx.Node, int] = {}
    for partition in partitions:
        if not order and partition.nodes:
            order = {n: i for i, n in enumerate(next(iter(partition.nodes)).graph.nodes)}
        dropped = {n for n in partition.nodes if not support.is_node_supported({}, n)}
        for node in sorted(partition.nodes, key=order.__getitem__):
            if any(a in dropped for a in node.all_input_nodes):
                dropped.add(node)
        for node in dropped:
            partition.remove_node(node)
        if any(support.is_node_supported({}, n) for n in partition.nodes):
            kept.append(partition)
    return kept


def _is_symbolic(e: Any) -> bool:
    if isinstance(e, (torch.SymInt, torch.SymFloat)):
        return True
    return isinstance(e, torch.Tensor) and any(isinstance(d, torch.SymInt) for d in e.shape)


def _source_name(node: fx.Node) -> str:
    grapharg = node.meta.get("grapharg")
    source = getattr(grapharg, "source", None)
    name = getattr(source, "name", None)
    return (name() if callable(name) else name) or str(node.target)


def _is_weight(node: fx.Node, example: Any) -> bool:
    """Parameters and buffers of the compiled module (dynamo passes them in as graph inputs)."""
    if isinstance(example, torch.nn.Parameter):
        return True
    return bool(re.search(r"_parameters|_buffers", _source_name(node)))


def _state_key(node: fx.Node) -> str:
    return clean_path(_source_name(node)) or node.name


class _ConvcSupport(OperatorSupportBase):
    """A node is supported when convc converts it alone, its tensor operands standing in as inputs."""

    def __init__(self, gm: fx.GraphModule, weights: Mapping[str, Any], keys: Mapping[str, str]) -> None:
        self.gm = gm
        self.weights = weights
        self.keys = keys
        self.fallbacks: dict[str, str] = {}
        self._cache: dict[fx.Node, bool] = {}
        self._lazy: dict[fx.Node, Any] = {}  # nodes whose convc value is a lazy layout (lazy_layout.py)

    def is_node_supported(self, submodules: Mapping[str, torch.nn.Module], node: fx.Node) -> bool:
        if node.op not in ("call_function", "call_method", "call_module"):
            return False
        if not self._cache:  # in graph order, so a node's producers are known to be lazy layouts or not
            for n in self.gm.graph.nodes:
                if n.op in ("call_function", "call_method", "call_module"):
                    self._cache[n] = self._try(n)
        return self._cache[node]

    def _stand_in(self, importer: FxImporter, arg: fx.Node, i: int) -> Any:
        """A lazy layout like the one `arg` computes, over a fresh input of its NCHW shape."""
        lazy = self._lazy[arg]
        base = importer.net.input(lazy.base.shape, lazy.base.dtype, name=f"in{i}")
        if isinstance(lazy, Permuted):
            return Permuted(base)
        return ChannelGroups(base, lazy.groups, lazy.swapped)

    def _try(self, node: fx.Node) -> bool:
        importer = FxImporter(self.gm, input_types={}, name="probe")
        for i, arg in enumerate(node.all_input_nodes):
            ex = self.weights.get(arg.name, arg.meta.get("example_value"))
            if arg.name in self.weights:
                importer.env[arg] = importer.convert_constant(ex, self.keys[arg.name])
            elif arg in self._lazy:
                importer.env[arg] = self._stand_in(importer, arg, i)
            elif isinstance(ex, torch.Tensor) and ex.is_floating_point():
                importer.env[arg] = importer.net.input(tuple(ex.shape), _dtype(ex), name=f"in{i}")
            elif isinstance(ex, torch.Tensor) or ex is None:
                importer.env[arg] = Unusable(f"a {getattr(ex, 'dtype', 'non-tensor')} value", reported=False)
            else:
                importer.env[arg] = ex
        out = importer.convert(node)
        if any(isinstance(v, Unusable) for v in _flat(out)) and not importer.problems:
            importer.problems.add(importer.where(node), "one of its outputs is something convc does not "
                                                        "compute (pooling indices)")
        if isinstance(out, LAZY_VALUES) and not importer.problems:
            self._lazy[node] = out
            return True
        if importer.problems or not any(isinstance(v, Value) for v in _flat(out)):
            if importer.problems:
                where, _, why = importer.problems.entries[0].partition(": ")
                self.fallbacks[where] = why
            return False
        return True


def _flat(v: Any) -> list[Any]:
    return [i for x in v for i in _flat(x)] if isinstance(v, (list, tuple)) else [v]


def _dtype(t: torch.Tensor) -> str:
    return check_dtype(str(t.dtype))


class ConvcSubgraph(torch.nn.Module):
    """Runs one partition through convc: torch tensors in, NumPy through the backend, torch tensors out."""

    def __init__(self, sub: fx.GraphModule, known: Mapping[str, Any], weights: Mapping[str, Any],
                 keys: Mapping[str, str], backend: str, dtype: str | None,
                 options: Mapping[str, Any]) -> None:
        super().__init__()
        self.sub = sub
        self.backend = backend
        self.options = dict(options)
        placeholders = [n for n in sub.graph.nodes if n.op == "placeholder"]
        self.input_types: dict[str, TensorType] = {}
        self.constants: dict[str, Any] = {}
        self.weight_slots: list[tuple[int, str]] = []  # (argument position, placeholder name)
        self.input_slots: list[int] = []
        # A partition's placeholders carry the names of the nodes that feed it in the captured graph.
        for i, ph in enumerate(placeholders):
            ex = known.get(ph.name)
            if ph.name in weights:
                self.constants[ph.name] = ex
                self.weight_slots.append((i, ph.name))
            elif isinstance(ex, torch.Tensor):
                self.input_types[ph.name] = TensorType(tuple(ex.shape), _dtype(ex))
                self.input_slots.append(i)
            else:
                self.constants[ph.name] = ex
        self.keys = {name: keys[name] for _, name in self.weight_slots}
        first = next(iter(self.input_types.values()), None)
        self.dtype = check_dtype(dtype) if dtype else (first.dtype if first else "float32")
        result = next(n for n in sub.graph.nodes if n.op == "output").args[0]
        # A tuple of values, or one node that returns a tuple (a chunk or split ending the partition).
        self.multiple_outputs = isinstance(result, (tuple, list)) or (
            isinstance(result, fx.Node) and isinstance(result.meta.get("example_value"), (tuple, list)))
        self._versions: tuple[Any, ...] | None = None
        self._model: Any = None

    def _compile(self, weight_args: list[torch.Tensor]) -> None:
        import convc

        constants = dict(self.constants)
        keys = {}
        for (_, name), t in zip(self.weight_slots, weight_args):
            constants[name] = t
            keys[id(t)] = self.keys[name]
        net = FxImporter(self.sub, input_types=self.input_types, constants=constants, param_keys=keys,
                         name="dynamo_subgraph", header="convc cannot compile a torch.compile subgraph").run()
        self._model = convc.compile(net, backend=self.backend, dtype=self.dtype, **self.options)

    def forward(self, *args: Any) -> Any:
        weight_args = [args[i] for i, _ in self.weight_slots]
        versions = tuple((id(t), t._version) for t in weight_args)
        if versions != self._versions:
            try:
                self._compile(weight_args)
            except ConvcError as e:  # e.g. a backend that lacks an op: this subgraph stays in torch
                warnings.warn(f"convc: a subgraph runs in eager PyTorch, convc could not compile it: {e}",
                              stacklevel=2)
                self._model = None
            self._versions = versions
        if self._model is None:
            return self.sub(*args)
        tensors = [args[i] for i in self.input_slots]
        arrays = [t.detach().cpu().numpy() for t in tensors]
        outs = self._model.run(*arrays)
        ref = tensors[0] if tensors else torch.empty(0)
        results = [torch.from_numpy(np.ascontiguousarray(o)).to(device=ref.device, dtype=ref.dtype)
                   for o in outs]
        return tuple(results) if self.multiple_outputs else results[0]
