"""`convc models`: every zoo model with its parameters and multiply-accumulates."""
from __future__ import annotations

import argparse

from convc.commands.common import console, human, print_json
from convc.commands.ui import keep_whole, make_table
from convc.summary import summarize


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from convc import models

    rows = []
    for name in models.names(imported=True):
        if models.info(name).imported:  # building one means constructing the torch model: on request only
            rows.append({"name": name, "description": models.describe(name), "params": None, "macs": None,
                         "input": None})
            continue
        s = summarize(models.get(name, init=False).graph)
        rows.append({"name": name, "description": models.describe(name), "params": s.total_params,
                     "macs": s.total_macs, "input": list(s.layers[0].shape)})
    if args.json:
        print_json(rows)
        return 0
    table = make_table("convc model zoo", ["model", "input", ("params", "right"), ("MACs", "right"),
                                           "description"])
    for r in rows:
        if r["params"] is None:
            table.add_row(r["name"], "", "", "", r["description"] + f"; convc summary {r['name']}")
            continue
        table.add_row(r["name"], "x".join(map(str, r["input"])), f"{r['params']:,}", human(r["macs"]),
                      r["description"])
    console.print(keep_whole(table, "model", words=("input", "params", "MACs")))
    return 0
