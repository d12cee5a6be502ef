"""The timing engine behind `convc bench`: backends compiled and timed side by side in one process.

    results = bench_model(lambda b: convc.models.get("resnet50", batch=b), ["torch", "triton"], [1, 64],
                          dtype="float16", settings=TimingSettings(warmup=10, repeat=100))

On CUDA each run is timed with a pair of torch.cuda.Event after warm-up (synchronizing before each run, so
a run's time is its latency, launch overhead included); on the CPU with time.perf_counter. The reported
time is the median. Inputs are one seeded random tensor per batch size, converted once per device and dtype
outside the timed region. A backend that cannot run here (no such dtype, needs CUDA) or fails to compile
is a result with a reason, never an exception.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convc.compiler import compile as convc_compile
from convc.device_profiles import Peaks, cuda_available, set_blas_threads
from convc.dsl import Network
from convc.errors import BackendError, ConvcError, OptionError
from convc.ir import Graph, Node
from convc.numerics import budget, rel_err
from convc.numerics_check import seeded_inputs
from convc.progress import report
from convc.registry import get_backend
from convc.roofline import LayerTiming, layer_cost

BASELINE = "torch"  # speed-ups are torch (cuDNN on a GPU) time / backend time


def torch_dtype(dtype: str) -> Any:
    import torch

    return getattr(torch, dtype)  # convc's dtype names are torch's


def set_cpu_threads(n: int) -> None:
    """torch's intra-op CPU threads and NumPy's BLAS threads (onnxruntime takes the same count through
    `backend_options`). On a machine busier than its cores, OpenMP workers that spin at barriers can
    make a 0.5 ms forward take 100+ ms; one thread gives stable numbers there."""
    if n < 1:
        raise OptionError(f"--threads {n}: must be at least 1")
    import torch

    torch.set_num_threads(n)
    set_blas_threads(n)


def cpu_threads() -> int:
    import torch

    return int(torch.get_num_threads())


@dataclass(frozen=True)
class TimingSettings:
    warmup: int = 3
    repeat: int = 20
    max_seconds: float = 5.0  # per case: stop repeating after this long (never before MIN_RUNS runs)
    cuda_graphs: bool = False
    seed: int = 0
    autotune: bool = True  # False: the Triton backend runs its default tile configurations


MIN_RUNS = 3


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed run."""

    times_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def runs(self) -> int:
        return len(self.times_s)


def time_function(fn: Callable[[], Any], *, cuda: bool, warmup: int, repeat: int,
                  max_seconds: float = float("inf")) -> Timing:
    """Calls `fn` `warmup` times, then up to `repeat` timed times (fewer once `max_seconds` have passed)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    started = time.perf_counter()
    if cuda:
        import torch

        torch.cuda.synchronize()
    for _ in range(max(repeat, 1)):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if len(times) >= MIN_RUNS and time.perf_counter() - started > max_seconds:
            break
    return Timing(tuple(times))


# ---------------------------------------------------------------------------- where a backend runs
def placement(backend: str, dtype: str, interpreted_ok: bool = False) -> tuple[str | None, str]:
    """('cuda' | 'cpu', '') where `backend` can run here, or (None, why not). `interpreted_ok`: a GPU
    backend may run emulated on the CPU when TRITON_INTERPRET=1 (fine for checking, not for timing)."""
    caps = get_backend(backend).capabilities
    if dtype not in caps.dtypes:
        return None, f"no {dtype} support (it runs {', '.join(caps.dtypes)})"
    if "cuda" in caps.devices and cuda_available():
        return "cuda", ""
    # A backend that lists CUDA first is a GPU backend whose CPU path, if any, is an emulation
    # (Triton's interpreter): far too slow for its time to mean anything.
    if caps.devices and caps.devices[0] == "cuda":
        if interpreted_ok and os.environ.get("TRITON_INTERPRET") == "1":
            return "cpu", ""
        if interpreted_ok:
            return None, ("needs a CUDA device (or TRITON_INTERPRET=1 to run its kernels interpreted on "
                          "the CPU)")
        return None, "needs a CUDA device (without one it runs interpreted: far too slow to time)"
    if "cpu" in caps.devices:
        return "cpu", ""
    return None, f"runs on {', '.join(caps.devices)}, none of which is here"


def backend_options(backend: str, device: str, cuda_graphs: bool, autotune: bool = True) -> dict[str, Any]:
    """Compile options that make each known backend run at its best on `device`. The torch baselines get
    channels-last on CUDA (cuDNN's fast layout for fp16); unknown (plugin) backends get none."""
    if backend in ("torch", "torch-compile"):
        opts: dict[str, Any] = {"device": device, "channels_last": device == "cuda"}
        if backend == "torch-compile" and cuda_graphs and device == "cuda":
            opts["mode"] = "reduce-overhead"
        return opts
    if backend == "triton":
        opts = {"device": device, "cuda_graphs": True} if cuda_graphs else {"device": device}
        return opts if autotune else {**opts, "autotune": False}
    if backend == "onnxruntime":  # the same intra-op thread count as torch (--threads sets both)
        return {"threads": cpu_threads()}
    return {}


@dataclass
class Runner:
    """One compiled model bound to its prepared inputs: `call()` is exactly what is timed."""

    device: str
    call: Callable[[], Any]
    uses_torch: bool

    def first_output(self) -> np.ndarray:
        with self.context():
            return as_numpy(self.call())

    def context(self) -> Any:
        if not self.uses_torch:
            return nullcontext()
        import torch

        return torch.inference_mode()


def as_numpy(out: Any) -> np.ndarray:
    """The first output as float64 NumPy, from a list/tuple/array/tensor (copied off the device at once:
    CUDA-graph modes overwrite their outputs on the next call)."""
    while isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out, np.float64)


def make_runner(model: Any, backend: str, device: str, dtype: str, inputs: list[np.ndarray]) -> Runner:
    """CPU-only backends (NumPy) take arrays through `model.run`; every other backend takes torch tensors
    of the working dtype on its device through `model(x)`, created here, once (and passed through the
    model's `prepare`, where it has one)."""
    devices = get_backend(backend).capabilities.devices
    if device == "cpu" and tuple(devices) == ("cpu",):
        return Runner(device, lambda: model.run(*inputs), uses_torch=False)
    import torch

    tensors = [torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=torch_dtype(dtype))
               for x in inputs]
    prepare = getattr(model, "prepare", None)
    if callable(prepare):
        # The torch backends' own input preparation (memory format, e.g. channels-last), done once here so
        # the timed calls convert nothing, as a deployed model fed by the previous layer would.
        tensors = list(prepare(*tensors))
    return Runner(device, lambda: model(*tensors), uses_torch=True)


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


# ---------------------------------------------------------------------------- whole models
@dataclass
class BenchResult:
    """One backend at one batch size: its status and, when it ran, its time and its numerical agreement."""

    backend: str
    batch: int
    status: str  # "ok", "unavailable" (cannot run here) or "error" (failed to compile or run)
    reason: str = ""
    device: str = ""
    timing: Timing | None = None
    compile_s: float | None = None
    speedup: float | None = None
    rel_err: float | None = None
    reference: str | None = None
    budget: float | None = None
    graph: Graph | None = field(default=None, repr=False)  # the optimized graph, for --layers

    @property
    def images_per_s(self) -> float | None:
        return self.batch / self.timing.median_s if self.timing else None

    @property
    def numerics_ok(self) -> bool | None:
        if self.rel_err is None or self.budget is None:
            return None
        return self.rel_err <= self.budget

    def to_dict(self) -> dict[str, Any]:
        t = self.timing
        return {
            "backend": self.backend, "batch": self.batch, "status": self.status, "reason": self.reason,
            "device": self.device, "time_ms": t.median_s * 1e3 if t else None,
            "min_ms": t.min_s * 1e3 if t else None, "runs": t.runs if t else 0,
            "images_per_s": self.images_per_s, "speedup_vs_torch": self.speedup,
            "compile_s": self.compile_s, "rel_err": self.rel_err, "reference": self.reference,
            "budget": self.budget, "numerics_ok": self.numerics_ok,
        }


def bench_one(net: Network, backend: str, dtype: str, inputs: list[np.ndarray], settings: TimingSettings,
              compile_options: dict[str, Any]) -> tuple[BenchResult, np.ndarray | None]:
    batch = net.graph.inputs[0].type.shape[0]
    try:
        device, why = placement(backend, dtype)
    except ConvcError as e:  # a plugin that fails to load (PluginError) is reported like a failed compile
        return BenchResult(backend, batch, "error", str(e)), None
    if device is None:
        return BenchResult(backend, batch, "unavailable", why), None
    try:
        t0 = time.perf_counter()
        model = convc_compile(net, backend=backend, dtype=dtype, **compile_options,
                              **backend_options(backend, device, settings.cuda_graphs, settings.autotune))
        compile_s = time.perf_counter() - t0
        runner = make_runner(model, backend, device, dtype, inputs)
        output = runner.first_output()  # also the first call: torch.compile and autotuners work here
        with runner.context():
            timing = time_function(runner.call, cuda=device == "cuda", warmup=settings.warmup,
                                   repeat=settings.repeat, max_seconds=settings.max_seconds)
    except Exception as e:  # a backend plugin's failure is a row of the table, not the end of the run
        return BenchResult(backend, batch, "error", first_line(e), device), None
    graph = getattr(model, "graph", None)
    return BenchResult(backend, batch, "ok", "", device, timing, compile_s,
                       graph=graph if isinstance(graph, Graph) else None), output


def bench_model(build: Callable[[int], Network], backends: list[str], batches: list[int], dtype: str,
                settings: TimingSettings | None = None, compile_options: dict[str, Any] | None = None,
                progress: Callable[[BenchResult], None] | None = None) -> list[BenchResult]:
    """Every backend at every batch size; outputs are compared with torch's (else NumPy's) output.
    Each case is reported to convc.progress before it runs. Interrupted (Ctrl-C), it raises
    BenchInterrupted holding every case finished so far, compared as far as they go."""
    settings = settings or TimingSettings()
    results: list[BenchResult] = []
    cases = len(batches) * len(backends)
    for batch in batches:
        row: list[BenchResult] = []
        outputs: dict[str, np.ndarray] = {}
        try:
            net = build(batch)
            inputs = [x.astype(np.float32) for x in seeded_inputs(net.graph, settings.seed)]
            for backend in backends:
                report("benchmarking", len(results) + len(row), cases, f"{backend}, batch {batch}")
                result, output = bench_one(net, backend, dtype, inputs, settings, dict(compile_options or {}))
                if output is not None:
                    outputs[backend] = output
                row.append(result)
                if progress is not None:
                    progress(result)
                _release_cuda_memory()
        except KeyboardInterrupt:
            compare(row, outputs, dtype)
            raise BenchInterrupted(results + row) from None
        compare(row, outputs, dtype)
        results += row
    report("benchmarking", cases, cases)
    return results


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during bench_model; `results` holds the cases that finished."""

    def __init__(self, results: list[BenchResult]) -> None:
        super().__init__(f"interrupted after {len(results)} case(s)")
        self.results = results


def compare(row: list[BenchResult], outputs: dict[str, np.ndarray], dtype: str) -> None:
    """Fills speed-up (vs torch) and relative error (vs torch's output, else NumPy's) for one batch size."""
    base = next((r for r in row if r.backend == BASELINE and r.timing), None)
    reference = BASELINE if BASELINE in outputs else ("numpy" if "numpy" in outputs else None)
    for r in row:
        if r.timing and base is not None and base.timing:
            r.speedup = base.timing.median_s / r.timing.median_s
        if r.backend in outputs and reference is not None:
            r.reference = reference
            r.budget = budget(dtype, whole_model=True)
            try:
                r.rel_err = rel_err(outputs[r.backend], outputs[reference])
            except ValueError:  # a different output shape: as wrong as an output can be
                r.rel_err = float("inf")


def _release_cuda_memory() -> None:
    if cuda_available():
        import torch

        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- single layers
def single_node_graph(graph: Graph, node: Node) -> Graph:
    """A graph holding only `node`: one input per distinct activation operand (same name and type), the
    node's parameter nodes with their arrays, and the node itself as the output."""
    g = Graph(f"{graph.name}:{node.name}")
    activations = list(dict.fromkeys(graph.activation_inputs(node)))
    for name in activations:
        t = graph.node(name).type
        g.add(Node(name, "input", (), {"shape": t.shape, "dtype": t.dtype}, t))
    for name in node.inputs:
        if name not in g:
            g.add(graph.node(name).replace())
            g.params[name] = graph.params[name]
    g.add(node.replace(attrs=dict(node.attrs)))
    g.outputs = [node.name]
    g.verify()
    return g


def bench_layers(graph: Graph, backend: str, dtype: str, peaks: Peaks, settings: TimingSettings,
                 ops: Callable[[Node], bool] = lambda n: n.op not in ("input", "param")
                 ) -> tuple[list[LayerTiming], list[str]]:
    """Times every node of `graph` (an optimized graph) as its own one-node graph on `backend`, compiled
    at -O0 so the node, its fused epilogue and its chosen algorithm stay exactly as they are."""
    device, why = placement(backend, dtype)
    if device is None:
        raise BackendError(f"backend '{backend}' cannot be timed here: {why}")
    batch = graph.inputs[0].type.shape[0]
    timings: list[LayerTiming] = []
    failures: list[str] = []
    for node in (n for n in graph.nodes() if ops(n)):
        try:
            g = single_node_graph(graph, node)
            model = convc_compile(g, backend=backend, dtype=dtype, opt_level=0, check_numerics=False,
                                  **backend_options(backend, device, settings.cuda_graphs, settings.autotune))
            inputs = [x.astype(np.float32) for x in seeded_inputs(g, settings.seed)]
            runner = make_runner(model, backend, device, dtype, inputs)
            with runner.context():
                runner.call()
                timing = time_function(runner.call, cuda=device == "cuda", warmup=settings.warmup,
                                       repeat=settings.repeat, max_seconds=settings.max_seconds)
        except Exception as e:  # one layer a backend cannot run alone must not end the breakdown
            failures.append(f"{backend} {node.name} ({node.op}): {first_line(e)}")
            continue
        timings.append(LayerTiming(backend, batch, layer_cost(graph, node, dtype), timing.median_s, peaks))
    return timings, failures
