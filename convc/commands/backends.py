"""`convc backends [NAME]`: every registered backend, its package, what it runs and whether it runs here.

A backend plugin that fails to load is listed as broken (with its error), never a crash.
"""
from __future__ import annotations

import argparse
from typing import Any

from convc.benchmark import placement
from convc.commands.common import console, print_json
from convc.commands.ui import keep_whole, make_table
from convc.errors import ConvcError, OptionError
from convc.registry import BACKENDS_GROUP, discover, get_backend, warn_broken
from convc.types import DTYPES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help="list the backends: package, ops, algorithms, dtypes, devices")
    p.add_argument("name", nargs="?", default=None, metavar="NAME",
                   help="show one backend in full (every op it runs)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per backend, ops included)")
    p.set_defaults(run=run)


def where_it_runs(name: str, caps: Any) -> tuple[bool, str]:
    """(runs here, in words): the device it would use, or why it cannot run on this machine."""
    dtype = "float32" if "float32" in caps.dtypes else caps.dtypes[0]
    device, why_not = placement(name, dtype, interpreted_ok=True)
    if device is None:
        return False, f"no: {why_not}"
    if device == "cpu" and caps.devices and caps.devices[0] == "cuda":
        return True, "interpreted on the CPU (TRITON_INTERPRET=1): for checking, far too slow to time"
    return True, f"yes, {device}"


def describe(name: str, package: str) -> dict[str, Any]:
    try:
        backend = get_backend(name)
    except ConvcError as e:
        return {"name": name, "package": package, "broken": str(e), "runs_here": False,
                "where": f"no: broken plugin ({e})"}
    caps = backend.capabilities
    runs, where = where_it_runs(name, caps)
    return {"name": name, "package": package, "description": getattr(backend, "description", ""),
            "ops": sorted(caps.ops), "conv_algos": list(caps.conv_algos), "dtypes": list(caps.dtypes),
            "devices": list(caps.devices), "runs_here": runs, "where": where}


def run(args: argparse.Namespace) -> int:
    plugins = discover(BACKENDS_GROUP)
    if args.name is not None and args.name not in plugins:
        raise OptionError(f"unknown backend {args.name!r}; known backends: {', '.join(sorted(plugins))}")
    names = [args.name] if args.name else sorted(plugins)
    rows = [describe(n, plugins[n].package) for n in names]
    warn_broken(BACKENDS_GROUP)  # the broken ones, once, as everywhere else; they are rows below too
    if args.json:
        print_json(rows)
        return 0
    table = make_table("convc backends", ["backend", "package", ("ops", "right"), "conv algorithms", "dtypes",
                                          "devices", "runs here"])
    notes: list[str] = []
    for r in rows:
        if "broken" in r:
            notes.append(f"{r['name']}: {r['broken']}")
            table.add_row(r["name"], r["package"], "-", "-", "-", "-", f"[red]broken [{len(notes)}][/]")
            continue
        if r["where"].startswith("yes"):
            here = f"[green]{r['where']}[/]"
        else:
            notes.append(f"{r['name']}: {r['where'].removeprefix('no: ')}")
            here = f"[yellow]{r['where'].split(':')[0].split(' ')[0]} [{len(notes)}][/]"
        table.add_row(r["name"], r["package"], str(len(r["ops"])), " ".join(r["conv_algos"]) or "-",
                      " ".join(DTYPES.get(d, d) for d in r["dtypes"]), " ".join(r["devices"]), here)
    console.print(keep_whole(table, "backend", words=("package", "ops", "conv algorithms", "dtypes", "runs here")))
    for i, note in enumerate(notes, 1):
        console.print(f"[{i}] {note}", markup=False)
    for r in rows:
        if args.name and "ops" in r:
            console.print(f"{r['name']}: {r['description']}", markup=False)
            console.print(f"ops ({len(r['ops'])}): {', '.join(r['ops'])}", markup=False)
    if not args.name:
        console.print(f"{len(rows)} backends; `convc backends NAME` lists the ops each one runs.")
    return 0
