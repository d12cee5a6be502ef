"""convc as an ONNX backend (onnx.backend.base.Backend), so ONNX's backend test suite can run on it.

    from convc.frontends.onnx_backend import ConvcBackend, backend_for
    rep = ConvcBackend.prepare(onnx_model)            # NumPy backend
    outputs = rep.run([x])
    TritonBackend = backend_for("triton")             # the same, compiled for convc's Triton backend

Graph inputs that feed weight operands (a Conv's W, a Gemm's B, a Reshape's shape: ONNX's node tests
pass them as inputs, not initializers) are bound as constants when `run` sees their values; the model is
compiled once per distinct set of bound values and input shapes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from convc.frontends.onnx_import import OnnxImporter, constant_inputs, load_onnx_model, require_onnx

require_onnx()
from onnx.backend.base import Backend, BackendRep, Device, DeviceType


class ConvcBackendRep(BackendRep):
    """A prepared model: `run(inputs)` binds the weight-like inputs, compiles (cached) and runs."""

    def __init__(self, model: Any, backend: str, dtype: str | None, options: Mapping[str, Any]) -> None:
        onnx = require_onnx()
        self.model = model
        self.backend = backend
        self.dtype = dtype
        self.options = dict(options)
        initializers = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in initializers]
        self.bound_names = set(constant_inputs(model))
        self.output_dtypes = [onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
                              if o.type.tensor_type.elem_type else None for o in model.graph.output]
        # Unsupported ops fail here, before anything runs (the bound inputs count as known).
        OnnxImporter(model, constants={n: np.zeros(0) for n in self.bound_names}).check_supported()
        self._compiled: dict[tuple[Any, ...], Any] = {}

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, Mapping):
            arrays = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            items = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            arrays = {name: np.asarray(v) for name, v in zip(self.input_names, items)}
        bound = {k: v for k, v in arrays.items() if k in self.bound_names}
        runtime = [n for n in self.input_names if n not in self.bound_names and n in arrays]
        key = tuple((k, v.dtype.str, v.shape, hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest())
                    for k, v in sorted(bound.items())) + tuple((n, arrays[n].shape) for n in runtime)
        if key not in self._compiled:
            self._compiled[key] = self._compile(bound, {n: arrays[n].shape for n in runtime})
        compiled = self._compiled[key]
        outs = compiled.run(*[arrays[n].astype(_compute_dtype(compiled), copy=False) for n in runtime])
        return tuple(o.astype(dt, copy=False) if dt is not None else o
                     for o, dt in zip(outs, self.output_dtypes))

    def _compile(self, bound: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> Any:
        import convc

        net = OnnxImporter(self.model, input_shapes=shapes, constants=bound).run()
        dtype = self.dtype or next((n.type.dtype for n in net.graph.inputs), None) or "float32"
        return convc.compile(net, backend=self.backend, dtype=dtype, **self.options)


def _compute_dtype(compiled: Any) -> np.dtype:
    return np.dtype(np.float32 if compiled.dtype in ("bfloat16", "float16") else compiled.dtype)


class ConvcBackend(Backend):
    """ONNX backend API over convc; `backend_for` makes one bound to another convc backend."""

    convc_backend: ClassVar[str] = "numpy"
    convc_dtype: ClassVar[str | None] = None
    convc_options: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> ConvcBackendRep:
        model = load_onnx_model(model)
        super().prepare(model, device, **kwargs)  # the base class checks the model
        return ConvcBackendRep(model, cls.convc_backend, cls.convc_dtype, cls.convc_options)

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU", outputs_info: Sequence[Any] | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Runs one NodeProto on `inputs` by wrapping it in a one-node model."""
        onnx = require_onnx()
        arrays = [np.asarray(v) for v in (inputs.values() if isinstance(inputs, Mapping) else inputs)]
        value_infos = [onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype),
                                                          a.shape)
                       for name, a in zip(node.input, arrays)]
        outputs = [onnx.helper.make_empty_tensor_value_info(name) for name in node.output]
        graph = onnx.helper.make_graph([node], "run_node", value_infos, outputs)
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        rep = ConvcBackendRep(model, cls.convc_backend, cls.convc_dtype, cls.convc_options)
        rep.output_dtypes = [None] * len(node.output)
        return rep.run(arrays)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        kind = Device(device).type
        if kind == DeviceType.CPU:
            return cls.convc_backend in ("numpy", "torch") or _interpreted_triton(cls.convc_backend)
        if kind == DeviceType.CUDA and cls.convc_backend in ("torch", "triton"):
            try:
                import torch

                return torch.cuda.is_available()
            except ImportError:
                return False
        return False


def _interpreted_triton(backend: str) -> bool:
    import os

    return backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1"


def backend_for(backend: str = "numpy", dtype: str | None = None, **options: Any) -> type[ConvcBackend]:
    """A ConvcBackend subclass that compiles for convc backend `backend` (e.g. "triton", "torch")."""
    return type(f"ConvcBackend_{backend.replace('-', '_')}", (ConvcBackend,),
                {"convc_backend": backend, "convc_dtype": dtype, "convc_options": dict(options)})


__all__ = ["ConvcBackend", "ConvcBackendRep", "backend_for"]
