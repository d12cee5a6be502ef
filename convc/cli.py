"""The `convc` command line: `convc <command> [options]`; `convc <command> --help` for each.

User mistakes print one line `convc: error: ...` and exit 2 (bad option) or 1 (a check that failed or a
model that cannot compile); a traceback means a bug in convc.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from convc.commands import COMMANDS
from convc.errors import ConvcError, OptionError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        print(f"convc: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def version_line() -> str:
    """convc's version and the versions it runs with, e.g. 'convc 0.1.0 (python 3.11.9, torch 2.13.0, ...)'."""
    from importlib import metadata

    import convc

    found = [f"python {sys.version.split()[0]}"]
    for dist in ("torch", "triton", "numpy"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} not installed")
    return f"convc {convc.__version__} ({', '.join(found)})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convc", description="A compiler from convolutional networks to kernels.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print convc's version and those of python, torch, triton and numpy, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a command may rerun itself in a subprocess
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except OptionError as e:
        print(f"convc: error: {e}", file=sys.stderr)
        return 2
    except ConvcError as e:
        print(f"convc: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
