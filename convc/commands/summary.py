"""`convc summary MODEL`: per layer the output shape, parameters, MACs and activation bytes; totals."""
from __future__ import annotations

import argparse

from convc.commands.common import add_model_args, console, human, load_model, parse_input, print_json
from convc.commands.ui import keep_whole, make_table
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
    table = make_table(f"{net.name} (output shapes with the batch axis; size: output bytes)",
                       ["layer", "op", "output shape", ("params", "right"), ("MACs", "right"),
                        ("size", "right")])
    for r in s.layers:
        table.add_row(r.name, r.op, "x".join(map(str, r.shape)), f"{r.params:,}" if r.params else "",
                      human(r.macs) if r.macs else "", human(r.activation_bytes, "B"))
    table.add_section()
    table.add_row("total", "", "", f"{s.total_params:,}", human(s.total_macs),
                  human(s.total_activation_bytes, "B"))
    console.print(keep_whole(table, "layer", words=("output shape", "params", "MACs", "size", "op")))
    return 0
