"""Compiled torch models: options, input checks, conversions, and the eager / torch.compile forward.

    model = convc.compile(net, backend="torch", dtype="float16", device="cuda", channels_last=True)
    y = model(x)                 # torch tensor in, torch tensor out (a NumPy input is converted)
    [y_np] = model.run(x_np)     # NumPy in, NumPy out
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from convc.backend import Backend, CompiledModel, check_inputs, numpy_inputs
from convc.errors import BackendError, OptionError
from convc.ir import Graph

from .program import GraphProgram, first_line

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
}
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None -> cuda when available, else cpu; 'cuda' without a CUDA device is an OptionError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"device={device!r} is not a device; use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if dev.type not in ("cpu", "cuda"):
        raise OptionError(f"device={device!r} is not supported by the torch backend; use 'cpu' or 'cuda'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device={device!r}: this torch {torch.__version__} sees no CUDA device; "
                          f"use device='cpu'")
    return dev


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(f"option {name}={value!r} must be True or False")
    return value


def reject_unknown_options(backend: str, unknown: dict[str, Any], known: tuple[str, ...]) -> None:
    if unknown:
        raise OptionError(f"backend '{backend}' has no option(s) {', '.join(sorted(unknown))}; "
                          f"its options are {', '.join(known)}")


@contextmanager
def tf32_precision(enabled: bool) -> Iterator[None]:
    """Sets cuBLAS/cuDNN TF32 use for one forward and restores the process-wide flags after, so a
    model's option never leaks into other code (torch's own default lets cuDNN convs use TF32)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A host copy in logical (N, C, ...) order; bfloat16, which NumPy lacks, comes back as float32."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.ascontiguousarray(t.cpu().numpy())


class TorchModel(CompiledModel):
    """`model(*inputs)` -> the output tensor (a tuple for several outputs); `model.run` -> NumPy list.

    With torch.compile mode 'reduce-overhead' (CUDA graphs) an output tensor is overwritten by the
    next call: clone it to keep it (`run` returns copies already)."""

    def __init__(self, backend: Backend, graph: Graph, dtype: str, device: torch.device,
                 channels_last: bool, tf32: bool, compile_mode: str | None = None,
                 use_torch_compile: bool = False) -> None:
        self.backend = backend.name
        self.graph = graph
        self.dtype = dtype
        self.torch_dtype = TORCH_DTYPES[dtype]
        self.device = device
        self.channels_last = channels_last
        self.tf32 = tf32
        self.mode = compile_mode
        # Weights are converted once, here; forward only reads them.
        params = {n.name: self._to_tensor(graph.params[n.name]) for n in graph.nodes("param")}
        self.program = GraphProgram(backend, graph, dtype, params)
        self._compiled: Callable[..., tuple[torch.Tensor, ...]] | None = None
        if use_torch_compile:
            self._compiled = torch.compile(self.program.forward, mode=compile_mode, fullgraph=True,
                                           dynamic=False)

    # ------------------------------------------------------------------ inputs
    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        # from_numpy shares memory (no Python-level element walk, unlike torch.tensor); .to() copies once.
        source = np.ascontiguousarray(array)
        t = torch.from_numpy(source).to(device=self.device, dtype=self.torch_dtype, copy=True)
        return self._layout(t)

    def _layout(self, t: torch.Tensor) -> torch.Tensor:
        if self.channels_last and t.dim() == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    def prepare(self, *inputs: Any) -> list[torch.Tensor]:
        """Checks the inputs and returns them as tensors on the model's device, dtype and memory format
        (benchmarks call this once so the timed calls convert nothing)."""
        for node, value in zip(self.graph.inputs, inputs):
            if not isinstance(value, (torch.Tensor, np.ndarray)):
                raise BackendError(f"input '{node.name}' of graph '{self.graph.name}' on backend "
                                   f"'{self.backend}': expected a torch.Tensor or numpy.ndarray, got "
                                   f"{type(value).__name__}")
        check_inputs(self.graph, inputs, self.backend)
        tensors = []
        for node, value in zip(self.graph.inputs, inputs):
            where = f"input '{node.name}' of graph '{self.graph.name}' on backend '{self.backend}'"
            if isinstance(value, np.ndarray):
                if value.dtype.kind != "f":
                    raise BackendError(f"{where}: expected a floating-point array (converted to "
                                       f"{self.dtype}), got dtype {value.dtype}")
                tensors.append(self._to_tensor(value))
                continue
            if value.dtype != self.torch_dtype:
                # NumPy arrays are always converted (NumPy has no bfloat16); a tensor of another dtype is
                # more likely a mistake, and a silent cast would hide a copy inside every timed call.
                raise BackendError(f"{where}: expected a {self.torch_dtype} tensor (the model was compiled "
                                   f"with dtype={self.dtype!r}), got {value.dtype}; cast it with "
                                   f".to({self.torch_dtype})")
            tensors.append(self._layout(value.to(self.device)))
        return tensors

    # ------------------------------------------------------------------ running
    def _precision(self) -> Any:
        return tf32_precision(self.tf32) if self.device.type == "cuda" else nullcontext()

    def _forward(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if self._compiled is None:
            env = self.program.forward_checked(*tensors)
            return tuple(env[o] for o in self.program.output_names)
        if self.mode in CUDA_GRAPH_MODES and self.device.type == "cuda":
            # Each call is a new inference step for CUDA-graph trees (outputs of the last one are reused).
            torch.compiler.cudagraph_mark_step_begin()
        from torch._dynamo.exc import TorchDynamoException

        try:
            return self._compiled(*tensors)
        except TorchDynamoException as e:
            raise BackendError(f"backend '{self.backend}': torch.compile (mode={self.mode!r}) failed on graph "
                               f"'{self.graph.name}': {type(e).__name__}: {first_line(e)}; the eager "
                               f"backend 'torch' runs the same lowering") from e

    def __call__(self, *inputs: Any) -> Any:
        tensors = self.prepare(*inputs)
        with torch.inference_mode(), self._precision():
            outs = self._forward(tensors)
        return outs[0] if len(outs) == 1 else outs

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        out = self(*numpy_inputs(self.graph, inputs, self.backend))
        return [to_numpy(o) for o in (out if isinstance(out, tuple) else (out,))]

    def trace(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Every node's value (eagerly, nothing released), as NumPy arrays: for numerics checks."""
        tensors = self.prepare(*(np.asarray(x) for x in inputs))
        with torch.inference_mode(), self._precision():
            env = self.program.forward_checked(*tensors, keep_all=True)
        return {name: to_numpy(t) for name, t in env.items()}


EAGER_OPTIONS = ("device", "channels_last", "tf32")


def compile_eager(backend: Backend, graph: Graph, *, dtype: str, device: str | torch.device | None = None,
                  channels_last: bool = False, tf32: bool = False, **unknown: Any) -> TorchModel:
    """The 'torch' backend's compiler: node-by-node eager PyTorch."""
    reject_unknown_options(backend.name, unknown, EAGER_OPTIONS)
    return TorchModel(backend, graph, dtype, resolve_device(device), check_flag("channels_last", channels_last),
                      check_flag("tf32", tf32))


def compile_with_torch_compile(backend: Backend, graph: Graph, *, dtype: str,
                               device: str | torch.device | None = None, channels_last: bool = False,
                               tf32: bool = False, mode: str | None = None, **unknown: Any) -> TorchModel:
    """The 'torch-compile' backend's compiler: the whole forward as one torch.compile'd function
    (compiled lazily, on the first call, for the input shapes the graph declares)."""
    reject_unknown_options(backend.name, unknown, EAGER_OPTIONS + ("mode",))
    if mode not in COMPILE_MODES:
        raise OptionError(f"backend '{backend.name}': mode={mode!r} is not a torch.compile mode; choose one "
                          f"of {', '.join(repr(m) for m in COMPILE_MODES)}")
    return TorchModel(backend, graph, dtype, resolve_device(device), check_flag("channels_last", channels_last),
                      check_flag("tf32", tf32), compile_mode=mode, use_torch_compile=True)
