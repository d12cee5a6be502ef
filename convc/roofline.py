"""The roofline: each layer's work (FLOPs, bytes), the device's two roofs, the floor and the chart.

    cost = layer_cost(graph, graph.node("features.0"), "float16")    # FLOPs = 2 * MACs of the op schema
    peaks = measure_gpu_peaks("float16")                             # or a device profile, or given numbers
    floor_s = floor_seconds(cost.flops, cost.bytes, peaks)           # max(FLOPs / peak, bytes / bandwidth)

The floor is the least time any kernel can take: it must do the arithmetic and it must move each input,
weight and output through memory once. Measured time over the floor says how much is left to gain.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convc.device_profiles import Peaks
from convc.errors import OptionError
from convc.ir import Graph, Node
from convc.ops import schema_of
from convc.types import ITEMSIZE


@dataclass(frozen=True)
class LayerCost:
    """The work of one node at one dtype: FLOPs (2 per multiply-accumulate) and bytes moved at least once."""

    name: str
    op: str
    flops: int
    bytes: int

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte."""
        return self.flops / self.bytes if self.bytes else 0.0


def layer_cost(graph: Graph, node: Node, dtype: str) -> LayerCost:
    """FLOPs = 2 * the schema's MACs; bytes = (distinct activation inputs + parameters + output) elements
    at `dtype`'s size (bfloat16 counts 2 bytes even where NumPy holds it in float32)."""
    acts = list(dict.fromkeys(graph.activation_inputs(node)))
    act_types = [graph.node(a).type for a in acts]
    macs = schema_of(node.op).macs(act_types, node.type, node.attrs)
    param_elements = sum(int(graph.params[p].size) for p in node.inputs[len(graph.activation_inputs(node)):])
    elements = sum(t.numel for t in act_types) + param_elements + node.type.numel
    return LayerCost(node.name, node.op, 2 * int(macs), elements * ITEMSIZE[dtype])


def floor_seconds(flops: float, nbytes: float, peaks: Peaks) -> float:
    """max(FLOPs / peak FLOP/s, bytes / peak bandwidth): the roofline's lower bound on time."""
    return max(flops / peaks.flops_per_s, nbytes / peaks.bytes_per_s)


def attainable_flops(intensity: float, peaks: Peaks) -> float:
    """The roof at an arithmetic intensity: min(peak FLOP/s, intensity * bandwidth)."""
    return min(peaks.flops_per_s, intensity * peaks.bytes_per_s)


@dataclass(frozen=True)
class LayerTiming:
    """One layer measured on one backend at one batch size, set against the roofs."""

    backend: str
    batch: int
    cost: LayerCost
    seconds: float
    peaks: Peaks

    @property
    def achieved_flops_per_s(self) -> float:
        return self.cost.flops / self.seconds

    @property
    def floor_s(self) -> float:
        return floor_seconds(self.cost.flops, self.cost.bytes, self.peaks)

    @property
    def fraction_of_floor(self) -> float:
        """floor / measured: 1.0 is a kernel at the roofline, 0.1 one ten times slower than it."""
        return self.floor_s / self.seconds

    @property
    def excess_s(self) -> float:
        """Time spent above the floor: what a perfect kernel for this layer would save."""
        return self.seconds - self.floor_s

    @property
    def bound(self) -> str:
        compute = self.cost.flops / self.peaks.flops_per_s
        return "compute" if compute >= self.cost.bytes / self.peaks.bytes_per_s else "memory"

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "batch": self.batch, "node": self.cost.name, "op": self.cost.op,
            "flops": self.cost.flops, "bytes": self.cost.bytes, "intensity": self.cost.intensity,
            "time_ms": self.seconds * 1e3, "tflops": self.achieved_flops_per_s / 1e12,
            "floor_ms": self.floor_s * 1e3, "fraction_of_floor": self.fraction_of_floor,
            "excess_ms": self.excess_s * 1e3, "bound": self.bound,
        }


def worst_layers(timings: list[LayerTiming], count: int = 10) -> list[LayerTiming]:
    """The layers that lose the most time above their floor. Ranking by lost time rather than by the
    fraction alone keeps a 2-microsecond flatten at 1% of its floor from hiding a slow 3x3 conv."""
    return sorted(timings, key=lambda t: t.excess_s, reverse=True)[:count]


# ---------------------------------------------------------------------------- measuring the roofs
def _best_rate(work: float, seconds: list[float]) -> float:
    # The fastest run: a roof is what the machine can do, and every slower run was disturbed by something
    # (other processes, clocks ramping up), which would put measured layers above 100% of their floor.
    return work / min(seconds)


def measure_gpu_peaks(dtype: str, matmul_n: int = 8192, copy_bytes: int = 2**30, repeat: int = 10) -> Peaks:
    """A large square matmul in `dtype` (TF32 off for float32) and a large device-to-device copy, timed
    with CUDA events after warm-up; bandwidth counts the bytes read plus the bytes written."""
    import torch

    mm = _gpu_matmul_times(dtype, matmul_n, repeat)
    cp = _gpu_copy_times(copy_bytes, repeat)
    torch.cuda.empty_cache()
    return Peaks(_best_rate(2.0 * matmul_n**3, mm), _best_rate(2.0 * copy_bytes, cp),
                 f"measured here: {matmul_n}^3 {dtype} matmul, {copy_bytes >> 20} MiB copy")


def _gpu_matmul_times(dtype: str, n: int, repeat: int) -> list[float]:
    import torch

    tdtype = getattr(torch, dtype)  # convc's dtype names are torch's
    a = torch.randn(n, n, device="cuda").to(tdtype)
    b = torch.randn(n, n, device="cuda").to(tdtype)
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return _cuda_times(lambda: torch.mm(a, b), repeat)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved_tf32


def _gpu_copy_times(nbytes: int, repeat: int) -> list[float]:
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return _cuda_times(lambda: dst.copy_(src), repeat)


def _cuda_times(fn: Any, repeat: int, warmup: int = 3) -> list[float]:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
             for _ in range(repeat)]
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in pairs]


def measure_cpu_peaks(dtype: str = "float32", matmul_n: int = 1024, copy_bytes: int = 256 * 2**20,
                      repeat: int = 5) -> Peaks:
    """A NumPy matmul (float64 for float64 work, else float32: NumPy has no fast half-precision GEMM)
    and an array copy larger than the caches."""
    np_dtype = np.float64 if dtype == "float64" else np.float32
    rng = np.random.default_rng(0)
    a = rng.standard_normal((matmul_n, matmul_n)).astype(np_dtype)
    b = rng.standard_normal((matmul_n, matmul_n)).astype(np_dtype)
    out = np.empty_like(a)
    mm = _cpu_times(lambda: np.matmul(a, b, out=out), repeat)
    src = np.ones(copy_bytes // 4, np.float32)
    dst = np.empty_like(src)
    cp = _cpu_times(lambda: np.copyto(dst, src), repeat)
    return Peaks(_best_rate(2.0 * matmul_n**3, mm), _best_rate(2.0 * src.nbytes, cp),
                 f"measured here: {matmul_n}^3 {np.dtype(np_dtype).name} NumPy matmul, "
                 f"{copy_bytes >> 20} MiB copy")


def _cpu_times(fn: Any, repeat: int) -> list[float]:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def parse_peaks(text: str) -> Peaks:
    """'FLOPS,BYTES' per second, e.g. '989e12,3.35e12', as the user's own roofs."""
    try:
        flops, bw = (float(t) for t in text.split(","))
    except ValueError:
        raise OptionError(f"--peaks {text!r}: expected 'measure', 'profile', 'datasheet' or two numbers "
                          f"FLOP/s,bytes/s such as 989e12,3.35e12") from None
    if flops <= 0 or bw <= 0:
        raise OptionError(f"--peaks {text!r}: both rates must be positive")
    return Peaks(flops, bw, "given on the command line")


# ---------------------------------------------------------------------------- the chart
def plot_roofline(timings: list[LayerTiming], peaks: Peaks, path: str | Path, title: str) -> Path:
    """Writes a log-log roofline PNG: the roofs, and one point per layer (intensity, achieved FLOP/s)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OptionError("--plot needs matplotlib; install it with `pip install convc[plot]`") from None
    points = [t for t in timings if t.cost.flops > 0 and t.cost.bytes > 0]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    lo = min([p.cost.intensity for p in points] + [0.1]) / 2
    hi = max([p.cost.intensity for p in points] + [peaks.ridge_intensity]) * 4
    xs = np.geomspace(lo, hi, 256)
    ax.plot(xs, [attainable_flops(x, peaks) / 1e12 for x in xs], color="black", lw=2, label=f"roof: {peaks}")
    for (backend, batch), group in _groups(points).items():
        ax.scatter([p.cost.intensity for p in group], [p.achieved_flops_per_s / 1e12 for p in group],
                   s=18, alpha=0.8, label=f"{backend}, batch {batch}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.text(0.01, 0.01, f"roofs: {peaks.source}", fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _groups(points: list[LayerTiming]) -> dict[tuple[str, int], list[LayerTiming]]:
    groups: dict[tuple[str, int], list[LayerTiming]] = {}
    for p in points:
        groups.setdefault((p.backend, p.batch), []).append(p)
    return groups
