"""CLI subcommands: each module has `add_parser(subparsers)` which sets `run` on its parser."""
from __future__ import annotations

from convc.commands import backends, bench, check, compile, export, models, passes, plan, run, show, summary

COMMANDS = (models, summary, show, run, compile, export, check, plan, passes, backends, bench)
