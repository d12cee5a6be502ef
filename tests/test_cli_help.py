"""Every option of every `convc` command says what it takes: a help text, and a metavar where it takes a
value (argparse's default metavar is the option's name in capitals, which says nothing)."""
from __future__ import annotations

import argparse

import pytest

from convc.cli import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"convc": parser, **{f"convc {name}": p for name, p in sub.choices.items()}}


COMMANDS = _commands()


def test_every_command_is_walked() -> None:
    assert {"convc run", "convc bench", "convc passes", "convc backends", "convc check"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_text(command: str) -> None:
    missing = []
    for action in COMMANDS[command]._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if not action.help or action.help == argparse.SUPPRESS or len(action.help) < 8:
            missing.append("/".join(action.option_strings) or action.dest)
    assert not missing, f"{command}: options without help: {', '.join(missing)}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_that_takes_a_value_names_it(command: str) -> None:
    unnamed = []
    for action in COMMANDS[command]._actions:
        takes_value = action.option_strings and action.nargs != 0 and action.choices is None
        if takes_value and action.metavar is None and action.type not in (int, float):
            unnamed.append("/".join(action.option_strings))
    assert not unnamed, f"{command}: give these a metavar: {', '.join(unnamed)}"


def test_help_of_each_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    for command, parser in COMMANDS.items():
        parser.print_help()
        out = capsys.readouterr().out
        assert out.startswith("usage: ") and "--quiet" in out, command
