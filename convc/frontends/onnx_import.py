"""ONNX model -> convc Network (opsets 9 and up; the ops listed in onnx_ops.HANDLERS).

    net = from_onnx("resnet50.onnx", input_shapes={"data": (1, 3, 224, 224)})

Weights are the initializers, under their ONNX names. Every node whose inputs are all known at import
(initializers, Constant, ConstantOfShape, Shape of a statically shaped tensor, and whatever is computed
from those) is folded with ONNX's own reference implementation, so exporter plumbing (Shape -> Gather ->
Concat -> Reshape) costs nothing. The ops left must be ones convc runs; any that are not are listed, with
their node names, before anything is built. `import onnx` happens here, not at `import convc`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convc.dsl import Network, Value
from convc.errors import ConvcError
from convc.frontends.building import FrontendError, ImportedNetwork, Problems, fresh_layer_name
from convc.frontends.onnx_batch import declared_batch, keep_symbolic_batch
from convc.frontends.onnx_context import OnnxCtx
from convc.frontends.onnx_ops import HANDLERS, WEIGHT_OPERANDS

MIN_OPSET = 9
# Ops whose outputs are never constant, however constant their inputs.
RANDOM_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli"}
ONNX_FLOAT_DTYPES = {1: "float32", 11: "float64", 10: "float16", 16: "bfloat16"}


def require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise FrontendError("importing ONNX models needs the onnx package: pip install convc[onnx]") from None
    return onnx


def load_onnx_model(model: Any) -> Any:
    """A ModelProto from a path, bytes or a ModelProto."""
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise FrontendError(f"ONNX model file '{model}' does not exist")
        try:
            return onnx.load(os.fspath(model))
        except Exception as e:  # noqa: BLE001 - a corrupt or non-ONNX file
            raise FrontendError(f"cannot read ONNX model '{model}': {type(e).__name__}: {e}") from None
    raise FrontendError(f"from_onnx() takes a path, bytes or an onnx.ModelProto, got {type(model).__name__}")


def model_opset(model: Any) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise FrontendError("the ONNX model imports no version of the default (ai.onnx) opset")
    return versions[0]


def upgraded(model: Any) -> tuple[Any, int]:
    """(model, opset): a model older than opset 9 is first converted by onnx.version_converter."""
    onnx = require_onnx()
    opset = model_opset(model)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise FrontendError(f"ONNX opset {opset} is newer than the installed onnx package knows ({newest}); "
                            f"upgrade onnx")
    if opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
        except Exception as e:  # noqa: BLE001 - the converter has no adapter for some op of this model
            raise FrontendError(f"ONNX opset {opset} is older than {MIN_OPSET} and onnx.version_converter "
                                f"could not upgrade it: {type(e).__name__}: {e}") from None
        opset = MIN_OPSET
    return model, opset


def node_label(node: Any) -> str:
    return f"{node.op_type} node '{node.name or node.output[0]}'"


class OnnxImporter:
    """Constant analysis, the unsupported-op check, then one handler call per run-time node."""

    def __init__(self, model: Any, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 constants: Mapping[str, np.ndarray] | None = None, name: str | None = None,
                 batch: int | None = None) -> None:
        onnx = require_onnx()
        self.onnx = onnx
        self.model, self.opset = upgraded(load_onnx_model(model))
        graph = self.model.graph
        self.name = name or graph.name or "onnx_model"
        self.consts: dict[str, np.ndarray] = {t.name: initializer_array(onnx, t) for t in graph.initializer}
        self.initializer_names = set(self.consts)
        self.consts.update({k: np.array(v) for k, v in (constants or {}).items()})  # copies: ours to keep
        self.inputs = [i for i in graph.input if i.name not in self.consts]
        self.input_shapes = dict(input_shapes or {})
        self.batch = batch  # replaces a symbolic batch axis (whatever input_shapes say about it)
        self.problems = Problems(f"cannot import ONNX model '{self.name}'")
        self.consumed = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}

    # ------------------------------------------------------------------ analysis
    def runtime_nodes(self) -> dict[int, Any]:
        """Nodes (by position) that compute from run-time tensors; the rest fold to constants at import."""
        known = set(self.consts)
        runtime = {}
        for index, node in enumerate(self.model.graph.node):
            ins = [i for i in node.input if i]
            # Subgraphs (If, Loop, Scan) may read any outer tensor, run-time ones included.
            subgraphs = any(a.g.node or a.graphs for a in node.attribute)
            foldable = node.op_type not in RANDOM_OPS and not subgraphs
            if node.op_type in ("Shape", "Size") or (foldable and all(i in known for i in ins)):
                known.update(o for o in node.output if o)
            else:
                runtime[index] = node
        return runtime

    def check_supported(self) -> None:
        """Raises one UnsupportedError listing every run-time node of an op convc lacks."""
        problems = Problems(f"ONNX model '{self.name}' uses ops convc does not support")
        for node in self.runtime_nodes().values():
            if node.domain not in ("", "ai.onnx"):
                problems.add(node_label(node), f"ops of domain '{node.domain}' are not supported",
                             unsupported=True)
            elif node.op_type not in HANDLERS:
                problems.add(node_label(node), f"op {node.op_type} is not supported", unsupported=True)
        problems.raise_if_any()

    # ------------------------------------------------------------------ the walk
    def run(self) -> Network:
        self.check_supported()
        runtime = self.runtime_nodes()
        net = ImportedNetwork(self.name)
        env: dict[str, Any] = dict(self.consts)
        for spec in self.inputs:
            try:
                env[spec.name] = self._input(net, spec)
            except ConvcError as e:
                self.problems.add(f"input '{spec.name}'", str(e))
        self.problems.raise_if_any()
        for index, node in enumerate(self.model.graph.node):
            ins = [env.get(i, _Missing(i)) if i else None for i in node.input]
            if any(isinstance(v, _Failed) for v in ins):
                outs: list[Any] = [_Failed()] * len(node.output)
            elif index in runtime:
                outs = self._convert(net, node, ins)
            else:
                outs = self._fold(node, ins)
            env.update({name: v for name, v in zip(node.output, outs) if name})
        self.problems.raise_if_any()
        self._outputs(net, env)
        return net

    def _input(self, net: Network, spec: Any) -> Value:
        ttype = spec.type.tensor_type
        dtype = ONNX_FLOAT_DTYPES.get(ttype.elem_type)
        if dtype is None:
            raise FrontendError(f"element type {self.onnx.TensorProto.DataType.Name(ttype.elem_type)} is not "
                                f"supported; convc graphs take floating-point inputs (bind integer inputs as "
                                f"constants)")
        if spec.name in self.input_shapes:
            shape = tuple(int(d) for d in self.input_shapes[spec.name])
        else:
            dims = []
            for i, d in enumerate(ttype.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    dims.append(d.dim_value)
                elif i == 0:  # an unnamed or symbolic batch size: one example
                    dims.append(1)
                else:
                    raise FrontendError(f"dimension {i} is symbolic ({d.dim_param or '?'}); pass "
                                        f"input_shapes={{'{spec.name}': (...)}}")
            shape = tuple(dims)
        if self.batch is not None and shape and not declared_batch(ttype):
            shape = (self.batch,) + shape[1:]
        return net.input(shape, dtype, name=spec.name)

    def _convert(self, net: Network, node: Any, ins: list[Any]) -> list[Any]:
        label = node_label(node)
        missing = [v.name for v in ins if isinstance(v, _Missing)]
        if missing:
            self.problems.add(label, f"input '{missing[0]}' is produced by no node, initializer or graph "
                                     "input")
            return [_Failed()] * len(node.output)
        attrs = {a.name: _attribute(self.onnx, a) for a in node.attribute}
        name = fresh_layer_name(net, node.name or node.output[0], self.initializer_names)
        ctx = OnnxCtx(net, name, label, self.opset, list(node.input), self.initializer_names,
                      list(node.output), self.consumed)
        try:
            outs = HANDLERS[node.op_type](ctx, ins, attrs)
        except ConvcError as e:
            self.problems.add(label, str(e))
            return [_Failed()] * len(node.output)
        return list(outs) + [_Failed()] * (len(node.output) - len(outs))

    def _fold(self, node: Any, ins: list[Any]) -> list[Any]:
        """Computes a node whose inputs are known: Shape/Size of a run-time tensor from its static shape,
        anything else with ONNX's reference implementation."""
        if node.op_type in ("Shape", "Size") and isinstance(ins[0], Value):
            shape = ins[0].shape
            if node.op_type == "Size":
                return [np.array(int(np.prod(shape)), np.int64)]
            start = next((a.i for a in node.attribute if a.name == "start"), 0)
            end = next((a.i for a in node.attribute if a.name == "end"), len(shape))
            return [np.array(shape[start:end], np.int64)]
        from onnx.reference import ReferenceEvaluator

        feeds = {name: v for name, v in zip(node.input, ins) if name}
        try:
            return list(ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds))
        except Exception as e:  # noqa: BLE001 - the reference implementation rejected the node: say which
            self.problems.add(node_label(node), f"cannot fold it at import: {type(e).__name__}: {e}")
            return [_Failed()] * len(node.output)

    def _outputs(self, net: Network, env: dict[str, Any]) -> None:
        for out in self.model.graph.output:
            v = env.get(out.name)
            if isinstance(v, Value):
                net.output(v)
            elif isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating):
                # A constant output (a graph of Constant nodes): a parameter the graph returns as is.
                key = fresh_layer_name(net, out.name, self.initializer_names)
                net.graph.add_param(key, v)
                net.graph.outputs.append(key)
            else:
                raise FrontendError(f"graph output '{out.name}' is "
                                    f"{'missing' if v is None else 'not a float tensor'}")


def initializer_array(onnx: Any, tensor: Any) -> np.ndarray:
    """An initializer as a NumPy array, refused by name when its size is beyond the memory limit, its data
    disagrees with its dims, or its values are complex."""
    from convc.limits import check_bytes

    where = f"initializer '{tensor.name}' (dims {list(tensor.dims)})"
    if any(d < 0 for d in tensor.dims):
        raise FrontendError(f"{where}: negative dimensions")
    check_bytes(int(np.prod(tensor.dims, dtype=object)) * 8, where)
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as e:  # e.g. 'cannot reshape array of size 5 into shape (2,3)'
        raise FrontendError(f"{where}: its data does not match its dims ({e})") from None
    if np.iscomplexobj(array):
        raise FrontendError(f"{where}: complex values ({array.dtype}); convc computes with real numbers")
    return array


class _Missing:
    def __init__(self, name: str) -> None:
        self.name = name


class _Failed:
    """The output of a node that failed (already reported): nodes reading it are skipped."""


def _attribute(onnx: Any, attr: Any) -> Any:
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return value


def from_onnx(model: Any, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
              constants: Mapping[str, np.ndarray] | None = None, name: str | None = None) -> Network:
    """Imports an ONNX model (path, bytes or ModelProto) into a Network.

    input_shapes: concrete shapes for inputs with symbolic dimensions (a symbolic batch defaults to 1).
    constants: values for graph inputs to treat as known weights (as if they were initializers).
    A symbolic batch axis shared by every input is kept: the inputs record it (`dynamic_batch`), and
    `convc.compile(net, max_batch=64)` runs every batch size up to 64 (convc/frontends/onnx_batch.py).
    """
    importer = OnnxImporter(model, input_shapes=input_shapes, constants=constants, name=name)

    def import_at(batch: int) -> Network:
        return OnnxImporter(importer.model, input_shapes=input_shapes, constants=constants,
                            name=importer.name, batch=batch).run()

    return keep_symbolic_batch(importer.run(), importer.inputs, import_at)


def constant_inputs(model: Any) -> list[str]:
    """Graph inputs (not initializers) that feed a weight operand (a Conv's W, a Gemm's B, a Reshape's
    shape, ...): a runtime must bind them as constants, since convc layers take fixed weights."""
    model = load_onnx_model(model)
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in init}
    shapes = {n: tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for n, i in inputs.items()}
    needed: list[str] = []
    for node in graph.node:
        positions = WEIGHT_OPERANDS.get(node.op_type, ())
        if callable(positions):
            positions = positions(node, shapes)
        for p in positions:
            if p < len(node.input) and node.input[p] in inputs and node.input[p] not in needed:
                needed.append(node.input[p])
    return needed
