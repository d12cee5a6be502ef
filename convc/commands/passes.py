"""`convc passes`: every registered pass (built-in or plugin): description, package, pipeline place."""
from __future__ import annotations

import argparse

from rich.table import Table

from convc.commands.common import console, print_json
from convc.pass_manager import available_passes, resolve_pipeline


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("passes", help="list every registered pass")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    registry = available_passes()
    place: dict[str, str] = {}
    for level in (1, 2, 3):
        for i, p in enumerate(resolve_pipeline(level, registry=registry), 1):
            place.setdefault(p.name, f"O{level} #{i}")
    rows = [{"name": p.name, "description": p.info.description, "package": p.info.origin,
             "default_pipeline": place.get(p.name, "not by default"), "requires": list(p.info.requires),
             "runs_after": list(p.info.runs_after)} for p in registry.values()]
    rows.sort(key=lambda r: (r["default_pipeline"] == "not by default", r["default_pipeline"], r["name"]))
    if args.json:
        print_json(rows)
        return 0
    table = Table(title="convc passes")
    for col in ("pass", "package", "default pipeline", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["package"], r["default_pipeline"], r["description"])
    console.print(table)
    return 0
