"""`convc run MODEL`: compile with the default pipeline, run on a seeded input, print shape, top-5, time."""
from __future__ import annotations

import argparse
import time

import numpy as np

from convc.commands.common import (
    add_backend_arg,
    add_compile_args,
    add_dtype_arg,
    add_model_args,
    compile_options,
    console,
    load_model,
    parse_input,
)
from convc.compiler import compile as convc_compile
from convc.numerics_check import seeded_inputs
from convc.summary import summarize


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="compile and run a model on a seeded random input")
    add_model_args(p)
    add_compile_args(p)
    add_backend_arg(p)
    add_dtype_arg(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument("--repeat", type=int, default=1, help="timed runs after the first (median is shown)")
    p.add_argument("--summary", action="store_true", help="print the model's totals first")
    p.set_defaults(run=run)


def top5(out: np.ndarray) -> list[tuple[int, float]]:
    flat = np.asarray(out, np.float64).reshape(out.shape[0], -1)[0]
    idx = np.argsort(-flat, kind="stable")[:5]
    return [(int(i), float(flat[i])) for i in idx]


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.batch, parse_input(args.input))
    if args.summary:
        s = summarize(net.graph)
        console.print(f"[bold]{net.name}[/]: {len(s.layers)} layers, {s.total_params:,} parameters, "
                      f"{s.total_macs / 1e9:.3f} GMACs, input {net.graph.inputs[0].type}")
    t0 = time.perf_counter()
    model = convc_compile(net, backend=args.backend, dtype=args.dtype, **compile_options(args))
    compile_s = time.perf_counter() - t0
    inputs = [x.astype(np.float32) for x in seeded_inputs(net.graph, args.seed)]
    times = []
    outs: list[np.ndarray] = []
    for _ in range(1 + max(args.repeat, 0)):
        t0 = time.perf_counter()
        outs = model.run(*inputs)
        times.append(time.perf_counter() - t0)
    run_s = float(np.median(times[1:])) if len(times) > 1 else times[0]
    console.print(f"compiled for [bold]{args.backend}[/] ({args.dtype}, -O{args.opt_level}) in {compile_s:.2f} s")
    for name, out in zip(model.graph.outputs, outs):
        console.print(f"output %{name}: shape {tuple(out.shape)}")
        console.print("top-5: " + ", ".join(f"#{i} {v:.4g}" for i, v in top5(out)))
    console.print(f"time: {run_s * 1e3:.1f} ms per batch of {net.graph.inputs[0].type.shape[0]}")
    return 0
