"""`convc plan MODEL`: the per-layer convolution algorithm plan and why each algorithm was chosen."""
from __future__ import annotations

import argparse

from rich.table import Table

from convc.commands.common import add_compile_args, add_model_args, compile_options, console, load_model, \
    parse_input, print_json
from convc.compiler import optimize
from convc.errors import OptionError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="print the conv algorithm plan")
    add_model_args(p)
    add_compile_args(p)
    p.add_argument("--backend", default="numpy")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.batch, parse_input(args.input))
    opts = compile_options(args)
    _, ctx, _ = optimize(net, backend=args.backend, dtype=args.dtype, **opts)
    plan = ctx.results.get("plan")
    if plan is None:
        raise OptionError(f"no plan: the algorithm pass did not run at -O{args.opt_level} (use -O2 or -O3)")
    if args.json:
        print_json(plan.to_dict())
        return 0
    rows = plan.to_table_rows()
    table = Table(title=f"{net.name}: conv algorithm plan ({args.backend}, {args.dtype}, -O{args.opt_level})")
    for col in rows[0] if rows else ("layer",):
        table.add_column(str(col))
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(table)
    return 0
