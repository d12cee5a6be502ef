"""`convc check MODEL`: each backend's output against the float64 reference, and its NaN/inf handling on an
input holding NaN, +inf and -inf; exit 1 beyond budget or outside the non-finite contract."""
from __future__ import annotations

import argparse

import numpy as np

from convc.benchmark import placement
from convc.commands.common import (
    add_compile_args,
    add_dtype_arg,
    add_model_args,
    compile_options,
    console,
    load_model,
    parse_input,
    seed,
    split_list,
)
from convc.commands.ui import keep_whole, make_table
from convc.compiler import compile as convc_compile
from convc.errors import ConvcError, OptionError, PluginError
from convc.nonfinite import poisoned, verdict
from convc.numerics import budget, rel_err
from convc.numerics_check import seeded_inputs
from convc.progress import track
from convc.registry import backend_names
from convc.types import check_dtype


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="compare backends with the float64 reference")
    add_model_args(p)
    add_compile_args(p)
    p.add_argument("--backends", default="numpy,torch", metavar="LIST",
                   help="comma-separated backends (default numpy,torch); 'all': every registered backend "
                        "that "
                        "can run here (the others are listed as unavailable)")
    add_dtype_arg(p)
    p.add_argument("--seed", type=seed, default=0, metavar="N", help="seed of the random input (default 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.batch, parse_input(args.input))
    dtype = check_dtype(args.dtype)
    every = args.backends.strip() == "all"
    backends = backend_names() if every else split_list(args.backends)
    if not backends:
        raise OptionError(f"--backends {args.backends!r} names no backend; give a comma-separated list such as "
                          f"numpy,torch, or 'all'")
    inputs = seeded_inputs(net.graph, args.seed)
    # The reference: the graph as written, unoptimized, in float64 on the NumPy backend.
    reference = convc_compile(net, backend="numpy", dtype="float64", opt_level=0).run(*inputs)
    limit = budget(dtype, whole_model=True)
    # float64 runs get the float64 input itself: rounding it to float32 would cost ~1e-8 of the 1e-9 budget.
    run_dtype = np.float64 if dtype == "float64" else np.float32
    # The same comparison with a NaN, +inf and -inf in the input: same positions as the reference, or
    # Winograd's documented spread within a tile (docs/numerics.md); never a number for a NaN.
    probe = poisoned(inputs, args.seed)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is the point of the probe
        probe_reference = convc_compile(net, backend="numpy", dtype="float64", opt_level=0).run(*probe)
    table = make_table(f"{net.name}: {dtype} against the float64 reference (budget {limit:.0e})",
                       ["backend", "rel. error", "NaN/inf", "result"])
    failed = False
    for name in track(backends, f"checking {net.name} on each backend"):
        if every:
            try:
                why_not = placement(name, dtype, interpreted_ok=True)[1]
            except PluginError as e:  # a broken backend plugin: reported, not a failed check
                why_not = f"broken plugin: {e}"
            if why_not:
                table.add_row(name, "-", "-", f"[yellow]unavailable: {why_not}[/]")
                continue
        try:
            model = convc_compile(net, backend=name, dtype=dtype, **compile_options(args))
            outs = model.run(*[x.astype(run_dtype) for x in inputs])
            err = max(rel_err(o, r) for o, r in zip(outs, reference))
            algos = [lp.algo for lp in model.plan.layers] if getattr(model, "plan", None) else []
            with np.errstate(invalid="ignore", over="ignore"):
                probe_outs = model.run(*[x.astype(run_dtype) for x in probe])
            nonfinite, nonfinite_ok = verdict(probe_outs, probe_reference, algos)
        except ConvcError as e:
            table.add_row(name, "-", "-", f"[red]error: {e}[/]")
            failed = True
            continue
        ok = err <= limit and nonfinite_ok
        failed |= not ok
        table.add_row(name, f"{err:.3e}", nonfinite if nonfinite_ok else f"[red]{nonfinite}[/]",
                      "[green]ok[/]" if ok else "[red]FAIL[/]")
    console.print(keep_whole(table, "backend"))
    return 1 if failed else 0
