"""Every torchvision zoo model (tests/models/torchvision_zoo.py: the 68 convolutional classifiers) on the
NumPy backend at -O2 against torch eager running the same nn.Module, batch 1, float32, one thread, side
by side in one process.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 nice python bench/bench_zoo_cpu.py \\
        [--models resnet18,mobilenet_v2] [--size 224] [--rounds 5] [--out bench/results/zoo_cpu_DATE.json]
        [--repin depthwise=im2col]

Each model is built with weights=None (seeded) and random BatchNorm statistics, converted with
convc.from_torch at `--size` (default 224, every model accepts it), compiled for the NumPy backend at
-O2, then timed: one warm-up call each, then `--rounds` rounds alternating numpy, torch, numpy, ...;
medians count. The JSON file is rewritten after every model (a long run interrupted keeps what it
measured) and records the machine, versions, load averages and each model's conv algorithm counts; the
markdown table, slowest ratio first, is printed at the end. regnet_y_128gf (644M parameters) is left
out unless named. `--repin A=B` also times, in the same rounds, the -O2 graph with every layer -O2 gave
algorithm A run with B instead: a before/after of an algorithm choice on one machine state.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import convc
from convc.backends.numpy_ref import backend as numpy_backend
from convc.benchmark import set_cpu_threads
from convc.device_profiles import blas_threads, cpu_name
from convc.numerics import rel_err
from convc.ops import CONV_OPS
from convc.serialize import atomic_write

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / d) for d in ("models", "")]
import torchvision_zoo as zoo
from bench_cpu_baselines import alternate_samples  # alternating rounds (same folder)

torch = zoo.torch


def repinned(graph: convc.Graph, repin: tuple[str, str]) -> convc.Graph:
    """A copy of `graph` whose conv layers with algorithm repin[0] run repin[1] instead."""
    old, new = repin
    copy = graph.copy()
    for node in list(copy.nodes()):
        if node.op in CONV_OPS and node.attrs.get("algo") == old:
            copy.replace_node(node.replace(attrs={**node.attrs, "algo": new}))
    return copy


def measure(name: str, size: int, rounds: int, repin: tuple[str, str] | None = None) -> dict[str, Any]:
    """One model: medians of alternating rounds, the error against torch float32 and the algo counts;
    with `repin`, the repinned graph too (key "repinned")."""
    model, x = zoo.build(name, size=size)
    net = convc.from_torch(model, x)
    t0 = time.perf_counter()
    compiled = convc.compile(net, backend="numpy", dtype="float32", opt_level=2, check_numerics=False)
    compile_s = time.perf_counter() - t0
    xn = x.numpy()

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    runs = {"numpy": lambda: compiled.run(xn)[0], "torch": run_torch}
    if repin is not None:
        other = numpy_backend.compile(repinned(compiled.graph, repin), dtype="float32")
        runs["repinned"] = lambda: other.run(xn)[0]
    err = rel_err(runs["numpy"](), run_torch())
    if repin is not None:
        assert rel_err(runs["repinned"](), run_torch()) < 1e-4, name
    samples = alternate_samples(runs, rounds)
    algos = Counter(str(n.attrs.get("algo")) for n in compiled.graph.nodes() if n.op in CONV_OPS)
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    extra = {} if repin is None else {"repin": "=".join(repin), "repinned_ms": med["repinned"]}
    return {**extra, "model": name, "numpy_ms": med["numpy"], "torch_ms": med["torch"],
            "ratio": med["numpy"] / med["torch"], "rel_err_vs_torch": err, "compile_s": compile_s,
            "conv_algos": dict(algos), "load_average": os.getloadavg()[0],
            "samples_ms": {k: [s * 1e3 for s in v] for k, v in samples.items()}}


def table(rows: list[dict[str, Any]]) -> str:
    repin = next((r["repin"] for r in rows if "repin" in r), None)
    extra = f" {repin} (ms) | numpy / repinned |" if repin else ""
    lines = [f"| model | numpy -O2 (ms) | torch eager (ms) | numpy / torch | rel. err | conv algos |{extra}",
             "|---|---:|---:|---:|---:|---|" + ("---:|---:|" if repin else "")]
    for r in sorted(rows, key=lambda r: -r["ratio"]):
        algos = ", ".join(f"{a} {n}" for a, n in sorted(r["conv_algos"].items()))
        more = (f" {r['repinned_ms']:.1f} | {r['numpy_ms'] / r['repinned_ms']:.2f} |"
                if "repinned_ms" in r else "")
        lines.append(f"| {r['model']} | {r['numpy_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f} | "
                     f"{r['rel_err_vs_torch']:.1e} | {algos} |{more}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated (default: every zoo model)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=f"bench/results/zoo_cpu_{datetime.date.today()}.json")
    parser.add_argument("--repin", default="", help="A=B: also time the graph with algorithm A run as B")
    args = parser.parse_args()
    repin = tuple(args.repin.split("=", 1)) if args.repin else None
    set_cpu_threads(args.threads)
    names = args.models.split(",") if args.models else [n for n in zoo.model_names() if n not in zoo.HUGE]
    header = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
              "numpy": np.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "blas_threads": blas_threads(), "size": args.size, "batch": 1, "dtype": "float32",
              "rounds": args.rounds, "opt_level": 2, "load_average_start": os.getloadavg()}
    print(f"# {header['date']}, {header['cpu']}, {header['cores']} cores, torch threads "
          f"{header['torch_threads']}, BLAS threads {header['blas_threads']}, {args.size}x{args.size}, "
          f"batch 1, float32, {args.rounds} alternating rounds; load {header['load_average_start']}",
          flush=True)
    rows: list[dict[str, Any]] = []
    for name in names:
        row = measure(name, args.size, args.rounds, repin)  # type: ignore[arg-type]
        rows.append(row)
        also = f"{args.repin} {row['repinned_ms']:.1f} ms, " if repin else ""
        print(f"{name}: numpy {row['numpy_ms']:.1f} ms, {also}torch {row['torch_ms']:.1f} ms, "
              f"ratio {row['ratio']:.2f}, err {row['rel_err_vs_torch']:.1e}, load {row['load_average']:.1f}",
              flush=True)
        header["load_average_end"] = os.getloadavg()
        atomic_write(args.out, json.dumps({**header, "models": rows}, indent=1).encode())
        gc.collect()
    print(table(rows))


if __name__ == "__main__":
    main()
