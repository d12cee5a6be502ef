"""`convc show MODEL [--format text|dot]`: the IR, before or after the pipeline (-O)."""
from __future__ import annotations

import argparse
import sys

from convc.commands.common import add_backend_arg, add_model_args, load_model, parse_input
from convc.printer import to_dot, to_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print the IR as text or graphviz DOT")
    add_model_args(p)
    p.add_argument("--format", choices=("text", "dot"), default="text",
                   help="text: the IR as convc prints it (default); dot: graphviz")
    p.add_argument("-O", dest="opt_level", type=int, default=0, choices=(0, 1, 2, 3),
                   help="show the graph after this optimization level's pipeline (default 0: as written)")
    add_backend_arg(p)
    p.add_argument("--params", action="store_true", help="list parameter nodes too")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    net = load_model(args.model, args.batch, parse_input(args.input))
    graph = net.graph
    if args.opt_level:
        from convc.compiler import optimize

        graph, _, _ = optimize(net, backend=args.backend, opt_level=args.opt_level)
    sys.stdout.write((to_dot(graph) if args.format == "dot" else to_text(graph, params=args.params)) + "\n")
    return 0
