"""`convc passes`: every registered pass (built-in or plugin): description, package, pipeline place.
A plugin that failed to load is listed as broken, with its error."""
from __future__ import annotations

import argparse

from convc.commands.common import console, print_json
from convc.commands.ui import keep_whole, make_table
from convc.pass_manager import available_passes, resolve_pipeline
from convc.registry import PASSES_GROUP, broken


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("passes", help="list every registered pass")
    p.add_argument("--json", action="store_true", help="print JSON (one object per pass)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    registry = available_passes()
    place: dict[str, str] = {}
    for level in (1, 2, 3):
        for i, p in enumerate(resolve_pipeline(level, registry=registry), 1):
            place.setdefault(p.name, f"O{level} #{i}")
    rows = [{"name": p.name, "description": p.info.description, "package": p.info.origin,
             "default_pipeline": place.get(p.name, "not by default"), "requires": list(p.info.requires),
             "runs_after": list(p.info.runs_after), "runs_before": list(p.info.runs_before)}
            for p in registry.values()]
    rows.sort(key=lambda r: (r["default_pipeline"] == "not by default", r["default_pipeline"], r["name"]))
    rows += [{"name": b.name, "description": f"broken: {b.error}", "package": b.package,
              "default_pipeline": "left out (broken)", "broken": b.error} for b in broken(PASSES_GROUP).values()]
    if args.json:
        print_json(rows)
        return 0
    table = make_table("convc passes", ["pass", "package", "default pipeline", "description"])
    for r in rows:
        style = "red" if "broken" in r else "default"
        table.add_row(f"[{style}]{r['name']}[/]", r["package"], r["default_pipeline"], r["description"])
    console.print(keep_whole(table, "pass", words=("package", "default pipeline")), markup=True)
    return 0
