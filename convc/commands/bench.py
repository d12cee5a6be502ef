"""`convc bench MODEL`: (being written) backends timed side by side."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    return None
