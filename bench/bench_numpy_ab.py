"""The NumPy backend of this checkout against the one of another git revision (and onnxruntime), on the
same optimized graph, alternating rounds in one process: a before/after measurement of a backend change.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/bench_numpy_ab.py --base main \\
        [--models resnet50,googlenet,convnext_tiny] [--rounds 9] [--size 224]

The base revision's backends/numpy_ref/ is read with `git show` into a temporary package (its imports
of itself renamed), so only the backend differs: both run the graph this checkout's -O2 pipeline made,
with the same algorithm choices. Rounds go base, this, onnxruntime, base, ... after a warm-up; medians
count, and the table gives this/base and this/onnxruntime. Both outputs are checked against each other.
A name convc.models does not know is built from torchvision (tests/models/torchvision_zoo.py) at
`--size`.
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np

import convc
from convc.benchmark import set_cpu_threads
from convc.device_profiles import blas_threads, cpu_name
from convc.numerics import rel_err

from bench_cpu_baselines import alternate  # alternating rounds, medians (same folder)
from profile_numpy import network  # convc's models, else the torchvision zoo (same folder)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "backends/numpy_ref"


def base_backend(rev: str, where: Path) -> ModuleType:
    """backends/numpy_ref at `rev`, importable as the package `numpy_ref_base`."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:{PACKAGE}"],
                           check=True, capture_output=True, text=True).stdout.split()
    package = where / "numpy_ref_base"
    package.mkdir()
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{PACKAGE}/{name}"], check=True,
                                  capture_output=True, text=True).stdout
            (package / name).write_text(text.replace("convc.backends.numpy_ref", "numpy_ref_base"))
    sys.path.insert(0, str(where))
    return importlib.import_module("numpy_ref_base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--models", default="resnet50,googlenet")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--size", type=int, default=224, help="input size of torchvision zoo models")
    args = parser.parse_args()
    set_cpu_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base = base_backend(args.base, Path(tmp))
        print(f"# {cpu_name()}, BLAS threads {blas_threads()}, float32, batch 1, base {args.base}, "
              f"{args.rounds} alternating rounds, medians; load average {os.getloadavg()[0]:.1f}")
        print("| model | base (ms) | this (ms) | onnxruntime (ms) | this / base | this / ort | base vs this |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in args.models.split(","):
            net = network(name, args.size)
            this = convc.compile(net, backend="numpy", dtype="float32", check_numerics=False)
            before = base.compile_graph(base.backend, this.graph, dtype="float32")
            ort = convc.compile(net, backend="onnxruntime", dtype="float32", threads=1)
            x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape).astype(np.float32)
            diff = rel_err(this.run(x)[0], before.run(x)[0])
            seconds = alternate({"base": partial(before.run, x), "this": partial(this.run, x),
                                 "ort": partial(ort.run, x)}, args.rounds)
            t = {k: v * 1e3 for k, v in seconds.items()}
            print(f"| {name} | {t['base']:.1f} | {t['this']:.1f} | {t['ort']:.1f} | {t['this'] / t['base']:.2f} "
                  f"| {t['this'] / t['ort']:.2f} | {diff:.1e} |", flush=True)
        print(f"\nload average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
