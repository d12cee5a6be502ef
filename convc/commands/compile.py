"""`convc compile MODEL`: run the pass pipeline for a backend; report, dump or emit what it made."""
from __future__ import annotations

import argparse
import time

from rich.table import Table

from convc.commands.common import add_compile_args, add_model_args, compile_options, console, load_model, \
    parse_input
from convc.compiler import compile as convc_compile
from convc.errors import OptionError
from convc.printer import to_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model for a backend")
    add_model_args(p)
    add_compile_args(p)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--timing", action="store_true", help="per-pass time and node counts")
    p.add_argument("--dump-ir", default=None, metavar="DIR", help="write the IR after each pass (text, DOT)")
    p.add_argument("--emit", default=None, metavar="DIR",
                   help="write what runs: kernel sources, launch grids, configurations, final IR")
    p.add_argument("--print-ir", action="store_true", help="print the final IR")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.batch, parse_input(args.input))
    t0 = time.perf_counter()
    model = convc_compile(net, backend=args.backend, dtype=args.dtype, timing=args.timing,
                          dump_ir=args.dump_ir, **compile_options(args))
    seconds = time.perf_counter() - t0
    records = model.pass_records
    if args.timing or args.check_numerics:
        table = Table(title=f"{net.name}: pass pipeline -O{args.opt_level}")
        for col in ("#", "pass", "package", "ms", "nodes", "changed", "error vs original"):
            table.add_column(col)
        for i, r in enumerate(records, 1):
            table.add_row(str(i), r.name, r.origin, f"{r.seconds * 1e3:.1f}", f"{r.nodes_before} -> {r.nodes_after}",
                          "yes" if r.changed else "no", "" if r.error is None else f"{r.error:.2e}")
        console.print(table)
    if args.print_ir:
        console.print(to_text(model.graph), markup=False)
    if args.emit:
        emit = getattr(model, "emit", None)
        if emit is None:
            raise OptionError(f"--emit: backend '{args.backend}' does not emit kernels (try --backend triton)")
        emit(args.emit)
        console.print(f"wrote kernels and IR to {args.emit}")
    if args.dump_ir:
        console.print(f"wrote the IR after each pass to {args.dump_ir}")
    ops: dict[str, int] = {}
    for n in model.graph.nodes():
        if n.op not in ("param", "input"):
            ops[n.op] = ops.get(n.op, 0) + 1
    console.print(f"compiled {net.name} for {args.backend} ({args.dtype}, -O{args.opt_level}) in {seconds:.2f} s: "
                  f"{len(records)} passes; " + ", ".join(f"{v} {k}" for k, v in sorted(ops.items())))
    return 0
