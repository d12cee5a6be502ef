"""`convc run MODEL`: compile with the default pipeline, run on a seeded input, print shape, top-5, time."""
from __future__ import annotations

import argparse
import time

import numpy as np

from convc.batching import batch_size, rebatch
from convc.commands.arrays import output_is_folder, read_inputs, write_outputs
from convc.commands.common import (
    add_backend_arg,
    add_compile_args,
    add_dtype_arg,
    add_model_args,
    batch_options,
    check_backend_dtype,
    compile_options,
    console,
    load_model,
    parse_input,
    seed,
)
from convc.compiler import compile as convc_compile
from convc.files import check_output_path
from convc.ir import Graph
from convc.numerics_check import seeded_inputs
from convc.summary import summarize


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="compile (or load a saved .convc) and run a model on a seeded random "
                                   "input")
    add_model_args(p)
    add_compile_args(p)
    add_backend_arg(p)
    add_dtype_arg(p)
    p.add_argument("--seed", type=seed, default=0, metavar="N", help="seed of the random input")
    p.add_argument("--input-file", default=None, metavar="FILE",
                   help="run on this input instead of a random one: a .npy array of the input's shape "
                        "(batch axis included), or an .npz with one array per input name")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="write the outputs: FILE.npy (one output) or a folder (one NAME.npy per output)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="timed runs after the first, untimed one (median and min are shown)")
    p.add_argument("--summary", action="store_true", help="print the model's totals first")
    p.set_defaults(run=run)


def top5(out: np.ndarray) -> list[tuple[int, float]]:
    flat = np.asarray(out, np.float64).reshape(out.shape[0], -1)[0]
    idx = np.argsort(-flat, kind="stable")[:5]
    return [(int(i), float(flat[i])) for i in idx]


def run(args: argparse.Namespace) -> int:
    if args.output:  # an unwritable --output fails now, not after the compile and the run
        check_output_path(args.output, "--output", folder=output_is_folder(args.output))
    if args.model.lower().endswith(".convc"):
        model, graph, header = load_saved(args)
        dtype = model.dtype
    else:
        check_backend_dtype(args.backend, args.dtype)
        net = load_model(args.model, args.batch, parse_input(args.input))
        if args.summary:
            s = summarize(net.graph)
            console.print(f"[bold]{net.name}[/]: {len(s.layers)} layers, {s.total_params:,} parameters, "
                          f"{s.total_macs / 1e9:.3f} GMACs, input {net.graph.inputs[0].type}")
        t0 = time.perf_counter()
        model = convc_compile(net, backend=args.backend, dtype=args.dtype, **compile_options(args),
                              **batch_options(args))
        graph, dtype = net.graph, args.dtype
        header = (f"compiled for [bold]{args.backend}[/] ({args.dtype}, -O{args.opt_level}"
                  f"{buckets_of(model)}) in {time.perf_counter() - t0:.2f} s")
    # float64 runs get float64 inputs: rounding them to float32 would cost more than float64's budget.
    host_dtype = np.float64 if dtype == "float64" else np.float32
    if args.input_file:
        inputs = read_inputs(args.input_file, graph, host_dtype, getattr(model, "max_batch", None))
    else:
        inputs = [x.astype(host_dtype) for x in seeded_inputs(graph, args.seed)]
    times = []
    outs: list[np.ndarray] = []
    for _ in range(1 + max(args.repeat, 0)):
        t0 = time.perf_counter()
        outs = model.run(*inputs)
        times.append(time.perf_counter() - t0)
    timed = times[1:] or times
    console.print(header)
    for name, out in zip(model.graph.outputs, outs):
        console.print(f"output %{name}: shape {tuple(out.shape)}")
        console.print("top-5: " + ", ".join(f"#{i} {v:.4g}" for i, v in top5(out)))
    batch = inputs[0].shape[0] if inputs else graph.inputs[0].type.shape[0]
    if len(timed) > 1:
        console.print(f"time: median {np.median(timed) * 1e3:.1f} ms, min {min(timed) * 1e3:.1f} ms per batch "
                      f"of {batch} ({len(timed)} timed runs after one untimed)")
    else:
        console.print(f"time: {timed[0] * 1e3:.1f} ms per batch of {batch}")
    if args.output:
        for path in write_outputs(args.output, list(model.graph.outputs), outs):
            console.print(f"wrote {path}", markup=False)
    return 0


def buckets_of(model: object) -> str:
    buckets = getattr(model, "buckets", None)
    return f", batch buckets {', '.join(map(str, buckets))}" if buckets else ""


def load_saved(args: argparse.Namespace) -> tuple[object, Graph, str]:
    """A model saved by `convc compile -o`: loaded without passes or tuning; its graph for --batch."""
    from convc.artifact import load_compiled

    t0 = time.perf_counter()
    model = load_compiled(args.model)
    graph = model.graph
    buckets = getattr(model, "buckets", None)
    batch = args.batch or (buckets[0] if buckets else batch_size(graph))
    if batch != batch_size(graph):
        graph = rebatch(graph, batch)
    header = (f"loaded {args.model} ({model.backend}, {model.dtype}{buckets_of(model)}): no pass, no "
              f"autotuning, in {time.perf_counter() - t0:.2f} s")
    return model, graph, header
