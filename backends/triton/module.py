"""The compiled module: a torch.nn.Module whose forward only allocates outputs and launches Triton kernels.

    model = convc.compile(net, backend="triton", dtype="float16")      # device="cuda" when there is one
    y = model(x)                       # x: an NCHW (or any strided) torch tensor of the compiled dtype
    [y] = model.run(x_numpy)           # NumPy in, NumPy out
    model.peak_activation_bytes, model.naive_activation_bytes
    model.emit("build/")               # kernel sources, launches and the final IR, for reading

Shapes are static: each input shape (a new batch size) gets its own variant — re-inferred graph, memory
plan and bound launches — built on first use and kept. Packed weights are shared by all variants.
With cuda_graphs=True a variant's launches are captured once and replayed; its outputs are static
buffers that the next call overwrites (as with torch.compile's reduce-overhead mode): clone to keep them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from convc.backends.triton.autotune import Tuner
from convc.backends.triton.common import INTERPRET, TORCH_DTYPES
from convc.backends.triton.context import NodeContext
from convc.backends.triton.geometry import spatial3
from convc.backends.triton.launch import Launch
from convc.backends.triton.layout import shape5, strided_copy_launch, strides_of_tensor, strides_of_view
from convc.backends.triton.lower import scratch_requests
from convc.backends.triton.memory import MemoryPlan, plan_memory
from convc.backends.triton.targets import gpu_target, local_target

from convc.backend import Backend, CompiledModel, numpy_inputs
from convc.errors import BackendError, OptionError
from convc.ir import Graph
from convc.ops import InvalidNode, schema_of
from convc.progress import track
from convc.types import TensorType

OPTIONS = ("device", "tf32", "cuda_graphs", "autotune", "target", "saved_state")


def graph_for_shapes(graph: Graph, shapes: tuple[tuple[int, ...], ...]) -> Graph:
    """A copy of `graph` whose inputs have `shapes`, with every node's type inferred again."""
    g = graph.copy()
    for node, shape in zip(g.inputs, shapes):
        g.replace_node(node.replace(attrs={**node.attrs, "shape": tuple(shape)},
                                    type=TensorType(tuple(shape), node.type.dtype)))
    for node in g.nodes():
        if node.op in ("input", "param"):
            continue
        acts = g.activation_inputs(node)
        try:
            t = schema_of(node.op).infer([g.node(a).type for a in acts], node.attrs)
        except InvalidNode as e:
            raise BackendError(f"node '{node.name}' ({node.op}) cannot take input shapes {shapes}: {e}") from None
        g.replace_node(node.replace(type=TensorType(t.shape, node.type.dtype)))
    return g


@dataclass
class Variant:
    """One static-shape compilation: graph, memory plan, launches (and optionally a captured CUDA graph)."""

    shapes: tuple[tuple[int, ...], ...]
    graph: Graph
    plan: MemoryPlan
    launches: list[Launch]
    staging: list[torch.Tensor] = field(default_factory=list)  # CUDA-graph inputs
    static_outputs: list[torch.Tensor] = field(default_factory=list)  # CUDA-graph outputs
    cuda_graph: Any = None

    def input_launches(self, xs: tuple[torch.Tensor, ...]) -> list[Launch]:
        out = []
        for node, x in zip(self.graph.inputs, xs):
            view = self.plan.views[node.name]
            out.append(strided_copy_launch(node.name, shape5(tuple(x.shape)), x, strides_of_tensor(x), view.ptr,
                                           strides_of_view(view, spatial3(tuple(x.shape)))))
        return out

    def output_launches(self, outs: list[torch.Tensor]) -> list[Launch]:
        launches = []
        for name, out in zip(self.graph.outputs, outs):
            if self.graph.node(name).op == "param":
                continue  # a constant output has no arena view: see fill_constant_outputs
            view = self.plan.views[name]
            launches.append(strided_copy_launch(name, shape5(tuple(out.shape)), view.ptr,
                                                strides_of_view(view, spatial3(tuple(out.shape))), out,
                                                strides_of_tensor(out)))
        return launches

    def fill_constant_outputs(self, outs: list[torch.Tensor]) -> None:
        """Outputs that are graph constants (an ONNX Constant) are copied from the parameters."""
        for name, out in zip(self.graph.outputs, outs):
            if self.graph.node(name).op == "param":
                out.copy_(torch.from_numpy(np.asarray(self.graph.params[name])).reshape(out.shape))


class TritonModule(torch.nn.Module, CompiledModel):
    def __init__(self, backend: Backend[NodeContext, list[Launch]], graph: Graph, dtype: str,
                 **options: Any) -> None:
        super().__init__()
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise OptionError(f"triton backend: unknown option(s) {', '.join(unknown)}; it takes "
                              f"{', '.join(OPTIONS)}")
        self.backend = backend.name
        self.graph = graph
        self.dtype = dtype
        self.torch_dtype = TORCH_DTYPES[dtype]
        # target="sm_90": launches are built on the meta device for that GPU, compiled ahead of time and
        # reported (static_report, emit); nothing runs, so no GPU or interpreter is needed.
        self.target = gpu_target(str(options["target"])) if options.get("target") else None
        if self.target is not None and options.get("device") not in (None, "meta"):
            raise OptionError(f"triton backend: target={self.target.name!r} compiles ahead of time for that GPU "
                              f"and runs nothing; leave device unset (got {options.get('device')!r})")
        self.device = "meta" if self.target is not None else _resolve_device(options.get("device"))
        self.tf32 = bool(options.get("tf32", False))
        self.cuda_graphs = bool(options.get("cuda_graphs", False))
        if self.cuda_graphs and (self.device != "cuda" or INTERPRET):
            raise BackendError("cuda_graphs=True needs a CUDA device and no TRITON_INTERPRET; this module runs "
                               f"on '{self.device}'{' under the interpreter' if INTERPRET else ''}")
        autotune = options.get("autotune")
        tune = (not INTERPRET) if autotune is None else bool(autotune)
        self.tuner = Tuner(enabled=tune and self.target is None)
        self._target_backend = backend
        self._packed: dict[tuple[str, str], torch.Tensor] = {}
        self.saved_kernels: dict[str, dict[str, bytes]] = {}  # Triton cache entries of a saved model
        if options.get("saved_state"):  # a saved compiled model: its configurations and packed weights
            from convc.backends.triton.artifact_state import restore_state

            restore_state(self, options["saved_state"])
        self.variants: dict[tuple[tuple[int, ...], ...], Variant] = {}
        self._declared = tuple(n.type.shape for n in graph.inputs)
        self._current = self.variant(self._declared)

    # ------------------------------------------------------------------ variants
    def variant(self, shapes: tuple[tuple[int, ...], ...]) -> Variant:
        """The compiled variant for these input shapes, built on first use."""
        if shapes not in self.variants:
            self.variants[shapes] = self._build(shapes)
        return self.variants[shapes]

    def _build(self, shapes: tuple[tuple[int, ...], ...]) -> Variant:
        g = graph_for_shapes(self.graph, shapes) if shapes != self._declared else self.graph
        scratch = {n.name: req for n in g.nodes() if (req := scratch_requests(n, g, self.dtype))}
        plan = plan_memory(g, self.dtype, self.device, scratch)
        launches: list[Launch] = []
        for node in g.nodes():
            if node.op in ("input", "param") or node.name in plan.aliases:
                continue  # boundary values and views of another value need no kernel
            ctx = NodeContext(graph=g, dtype=self.dtype, node=node, plan=plan, packed=self._packed,
                              device=self.device, tf32=self.tf32)
            launches += self._target_backend.lower(node, ctx)
        launches = self._tune(launches, plan)
        variant = Variant(shapes, g, plan, launches)
        if self.cuda_graphs:
            self._capture(variant)
        return variant

    def _tune(self, launches: list[Launch], plan: MemoryPlan) -> list[Launch]:
        needs_run = self.tuner.enabled and any(
            launch.family and self.tuner.key(launch, self.dtype) not in self.tuner.entries for launch in launches)
        if needs_run:
            # Random bytes below 64 keep every fp16 / bf16 / fp32 value finite and at most ~2, so the
            # configurations are compared on real numbers, not on whatever the arena held.
            plan.arena.random_(0, 64)
        tuned = [self.tuner.choose(launch, self.dtype)
                 for launch in track(launches, "autotuning Triton kernels", lambda launch: launch.node)]
        self.tuner.save()
        return tuned

    def _capture(self, variant: Variant) -> None:
        variant.staging = [torch.empty(s, dtype=self.torch_dtype, device=self.device) for s in variant.shapes]
        variant.static_outputs = [torch.empty(variant.graph.node(o).type.shape, dtype=self.torch_dtype,
                                              device=self.device) for o in variant.graph.outputs]
        steps = (variant.input_launches(tuple(variant.staging)) + variant.launches
                 + variant.output_launches(variant.static_outputs))
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for step in steps:  # compile every kernel before capture
                step()
        torch.cuda.current_stream().wait_stream(stream)
        variant.fill_constant_outputs(variant.static_outputs)  # constant: outside the captured graph
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for step in steps:
                step()
        variant.cuda_graph = graph

    # ------------------------------------------------------------------ running
    def check_inputs(self, xs: tuple[Any, ...]) -> tuple[tuple[int, ...], ...]:
        expected = self.graph.inputs
        if len(xs) != len(expected):
            raise BackendError(f"graph '{self.graph.name}' takes {len(expected)} input(s) "
                               f"({', '.join(n.name for n in expected)}), got {len(xs)}")
        shapes = []
        for node, x in zip(expected, xs):
            want = node.type.shape
            where = f"input '{node.name}' of graph '{self.graph.name}' (triton backend)"
            if not isinstance(x, torch.Tensor):
                raise BackendError(f"{where}: expected a torch.Tensor, got {type(x).__name__}; use .run() for "
                                   f"NumPy arrays")
            if x.layout != torch.strided:
                raise BackendError(f"{where}: expected a dense (strided) tensor, got layout {x.layout}")
            if x.dtype != self.torch_dtype:
                raise BackendError(f"{where}: expected dtype {self.torch_dtype}, got {x.dtype}")
            if x.device.type != self.device:
                raise BackendError(f"{where}: expected a tensor on '{self.device}', got '{x.device}'")
            if x.dim() != len(want) or tuple(x.shape[1:]) != tuple(want[1:]):
                raise BackendError(f"{where}: expected shape (batch, {', '.join(map(str, want[1:]))}) in "
                                   f"(N, C, ...) order, got {tuple(x.shape)}")
            shapes.append(tuple(x.shape))
        return tuple(shapes)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.target is not None:
            raise BackendError(f"graph '{self.graph.name}' was compiled ahead of time for {self.target.name} "
                               f"(target=...): it can be reported and emitted, not run; compile without a "
                               f"target to run it")
        variant = self.variant(self.check_inputs(xs))
        self._current = variant
        if variant.cuda_graph is not None:
            for x, staging in zip(xs, variant.staging):  # user tensors -> the captured staging buffers
                strided_copy_launch("stage", shape5(tuple(x.shape)), x, strides_of_tensor(x), staging,
                                    strides_of_tensor(staging))()
            variant.cuda_graph.replay()
            outs = list(variant.static_outputs)
        else:
            for launch in variant.input_launches(xs):
                launch()
            for launch in variant.launches:
                launch()
            outs = [torch.empty(variant.graph.node(o).type.shape, dtype=self.torch_dtype, device=self.device)
                    for o in variant.graph.outputs]
            for launch in variant.output_launches(outs):
                launch()
            variant.fill_constant_outputs(outs)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        xs = tuple(torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(
            device=self.device, dtype=self.torch_dtype) for a in numpy_inputs(self.graph, inputs, "triton"))
        out = self(*xs)
        outs = out if isinstance(out, tuple) else (out,)
        return [o.float().cpu().numpy() if o.dtype == torch.bfloat16 else o.cpu().numpy() for o in outs]

    # ------------------------------------------------------------------ reporting
    @property
    def peak_activation_bytes(self) -> int:
        """Arena size of the current variant (the last one run): activations plus kernel scratch."""
        return self._current.plan.peak_bytes

    @property
    def naive_activation_bytes(self) -> int:
        """What one buffer per value would take: the sum of every activation's size."""
        return self._current.plan.naive_bytes

    @property
    def launches(self) -> list[Launch]:
        return self._current.launches

    def emit(self, directory: str | Path) -> list[Path]:
        """Kernel sources, launches and the IR; with a target also each kernel's PTX, cubin and the report."""
        from convc.backends.triton.emit import emit_module

        written = emit_module(self, Path(directory))
        if self.target is not None:
            from convc.backends.triton.static_report import emit_static

            emit_static(self, self.target, Path(directory))
            written.append(Path(directory) / "report.json")
        return written

    def artifact_state(self) -> dict[str, Any]:
        """Packed weights, kernel configurations and binaries for convc.save_compiled."""
        from convc.backends.triton.artifact_state import export_state

        return export_state(self)

    def install_saved_kernels(self) -> int:
        """A loaded model's compiled kernels into Triton's cache (convc.load_compiled calls it once the
        file's target matches this machine)."""
        from convc.backends.triton.artifact_state import install_saved_kernels

        return install_saved_kernels(self)

    def artifact_target(self) -> dict[str, Any]:
        """What a saved copy must match besides the device: the interpreter, the ahead-of-time target."""
        return {"interpreter": INTERPRET, **({"arch": self.target.name} if self.target is not None else {})}

    def static_report(self) -> dict[str, Any]:
        """Every launch compiled for the target (default: the local GPU's): registers, spills, shared memory,
        occupancy, pipelined loops, wgmma / TMA and waves (backends/triton/static_report.py)."""
        from convc.backends.triton.static_report import static_report

        target = self.target or local_target()
        if target is None:
            raise BackendError("static_report: this module has no target and there is no local GPU of a known "
                               "generation; compile with target='sm_90' (or 'sm_80')")
        return static_report(self, target)

    @staticmethod
    def report_text(report: dict[str, Any]) -> str:
        """A static report as a plain-text table (what `convc compile --target` prints)."""
        from convc.backends.triton.static_report import report_text

        return report_text(report)


def _resolve_device(device: Any) -> str:
    name = "cuda" if device is None and torch.cuda.is_available() and not INTERPRET else str(device or "cpu")
    name = name.split(":")[0]
    if name not in ("cpu", "cuda"):
        raise OptionError(f"triton backend: device {device!r} is not supported; use 'cuda' (or 'cpu' under "
                          f"TRITON_INTERPRET=1)")
    if name == "cpu" and not INTERPRET:
        raise BackendError("triton backend: device 'cpu' runs only under the Triton interpreter; set "
                           "TRITON_INTERPRET=1 before importing convc.backends.triton, or use device='cuda'")
    if name == "cuda" and not torch.cuda.is_available():
        raise BackendError("triton backend: device 'cuda' requested but torch sees no CUDA device")
    return name

