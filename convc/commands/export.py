"""`convc export MODEL -o model.onnx [-O2]`: the graph as a standard ONNX model (opset 17).

At -O0 (default) the graph is written as built; at -O1/-O2 after the rewrites that carry over to ONNX
(dropout and identities removed, constants and batch norms folded, fused epilogues written back as
standard activation and Add nodes). Algorithm choice is left to the runtime that loads the file.
"""
from __future__ import annotations

import argparse

from convc.commands.common import add_model_args, load_model, parse_input


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a model as an ONNX file (onnxruntime and others run it)")
    add_model_args(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("-O", dest="opt_level", type=int, default=0, choices=(0, 1, 2),
                   help="0: the graph as built (default); 1 or 2: with folded weights and fused epilogues")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from convc.files import check_output_path
    from convc.frontends.onnx_export import to_onnx

    check_output_path(args.output, "-o")  # before the model is built and converted
    net = load_model(args.model, args.batch, parse_input(args.input))
    proto = to_onnx(net, args.output, optimized=args.opt_level > 0)
    print(f"wrote {args.output}: {len(proto.graph.node)} ONNX nodes, opset {proto.opset_import[0].version}, "
          f"inputs {', '.join(i.name for i in proto.graph.input)}")
    return 0
