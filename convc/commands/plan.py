"""`convc plan MODEL`: the per-layer convolution algorithm plan and why each algorithm was chosen."""
from __future__ import annotations

import argparse

from convc.commands.common import (
    add_backend_arg,
    add_compile_args,
    add_dtype_arg,
    add_model_args,
    check_backend_dtype,
    compile_options,
    console,
    load_model,
    parse_input,
    print_json,
)
from convc.commands.ui import keep_whole, make_table
from convc.compiler import optimize
from convc.errors import OptionError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="print the conv algorithm plan")
    add_model_args(p)
    add_compile_args(p)
    add_backend_arg(p)
    add_dtype_arg(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_backend_dtype(args.backend, args.dtype)
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
    columns = [str(col) for col in (rows[0] if rows else ("layer",))]
    table = make_table(f"{net.name}: conv algorithm plan ({args.backend}, {args.dtype}, -O{args.opt_level})",
                       columns)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    console.print(keep_whole(table, columns[0], words=columns[1:]))
    return 0
