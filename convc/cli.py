"""The `convc` command line: `convc <command> [options]`; `convc <command> --help` for each.

User mistakes print one line `convc: error: ...` and exit 2 (bad option) or 1 (a check that failed or a
model that cannot compile); a traceback means a bug in convc.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from convc.commands import COMMANDS
from convc.commands.ui import showing_progress
from convc.errors import ConvcError, OptionError, PluginWarning


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        print(f"convc: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """convc's own warnings as one line, like its errors; others as Python prints them."""
    if issubclass(category, PluginWarning):
        print(f"convc: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def version_line() -> str:
    """convc's version and the versions it runs with, e.g. 'convc 0.1.0 (python 3.11.9, torch 2.13.0, ...)'."""
    from importlib import metadata

    import convc

    found = [f"python {sys.version.split()[0]}"]
    for dist in ("torch", "triton", "numpy", "numba"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} not installed")
    return f"convc {convc.__version__} ({', '.join(found)})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convc", description="A compiler from convolutional networks to kernels.")
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the versions of convc, python, torch, triton, numpy and numba, and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    for command in sub.choices.values():  # also after the command: `convc bench resnet50 --quiet`
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="no progress bars on stderr (they are drawn only on a terminal)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a command may rerun itself in a subprocess
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings(), showing_progress(enabled=not args.quiet):
            warnings.showwarning = _show_warning
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
