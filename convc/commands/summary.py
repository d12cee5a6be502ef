"""`convc summary MODEL`: per layer the output shape, parameters, MACs and activation bytes; totals."""
from __future__ import annotations

import argparse

from rich.table import Table

from convc.commands.common import add_model_args, console, human, load_model, parse_input, print_json
from convc.summary import summarize


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters and MACs")
    add_model_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (total_params, total_macs, layers)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.batch, parse_input(args.input), init=False)
    s = summarize(net.graph)
    if args.json:
        print_json(s.to_dict())
        return 0
    table = Table(title=f"{net.name}")
    for col in ("layer", "op", "output shape", "params", "MACs", "activations"):
        table.add_column(col, justify="right" if col in ("params", "MACs", "activations") else "left")
    for r in s.layers:
        table.add_row(r.name, r.op, "x".join(map(str, r.shape)), f"{r.params:,}" if r.params else "",
                      human(r.macs) if r.macs else "", human(r.activation_bytes, "B"))
    table.add_section()
    table.add_row("total", "", "", f"{s.total_params:,}", human(s.total_macs),
                  human(s.total_activation_bytes, "B"))
    console.print(table)
    return 0
