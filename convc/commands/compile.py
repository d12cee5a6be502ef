"""`convc compile MODEL`: run the pass pipeline for a backend; report, dump or emit what it made."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from convc.commands.common import (
    add_backend_arg,
    add_compile_args,
    add_dtype_arg,
    add_model_args,
    batch_options,
    check_backend_dtype,
    compile_options,
    console,
    load_model,
    parse_input,
    print_json,
)
from convc.commands.ui import keep_whole, make_table
from convc.compiler import compile as convc_compile
from convc.errors import OptionError
from convc.files import check_output_path
from convc.printer import to_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a model for a backend")
    add_model_args(p)
    add_compile_args(p)
    add_backend_arg(p)
    add_dtype_arg(p)
    p.add_argument("--timing", action="store_true", help="per-pass time and node counts")
    p.add_argument("--dump-ir", default=None, metavar="DIR", help="write the IR after each pass (text, DOT)")
    p.add_argument("--emit", default=None, metavar="DIR",
                   help="write what runs: kernel sources, launch grids, configurations, final IR")
    p.add_argument("--print-ir", action="store_true", help="print the final IR")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="save the compiled model to one file (e.g. model.convc): graph, weights, plans, "
                        "tuned kernels; `convc run FILE` runs it without compiling (docs/artifacts.md)")
    p.add_argument("--target", default=None, metavar="SM",
                   help="triton: compile every kernel ahead of time for a GPU (sm_90, sm_80; no GPU needed) "
                        "and print its static report; --emit then also writes PTX, cubins and report.json "
                        "(default with --emit: the local GPU, else sm_90)")
    p.add_argument("--json", action="store_true", help="with --target: print the static report as JSON only")
    p.set_defaults(run=run)


def _target(args: argparse.Namespace) -> str | None:
    """The GPU target to compile for ahead of time, or None to compile for running here."""
    if args.target or args.backend != "triton" or not args.emit:
        return args.target
    from convc.device_profiles import cuda_available

    if cuda_available():  # the local GPU's own target
        import torch

        major, minor = torch.cuda.get_device_capability()
        return f"sm_{major}{minor}"
    return None if _interpreting() else "sm_90"


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def run(args: argparse.Namespace) -> int:
    check_backend_dtype(args.backend, args.dtype)
    for flag, folder in (("--dump-ir", args.dump_ir), ("--emit", args.emit)):
        if folder:  # say it before compiling, not after
            check_output_path(folder, flag, folder=True)
    if args.output:
        check_output_path(args.output, "-o")
    if args.json and not (args.target or _target(args)):
        raise OptionError("--json prints the static kernel report: give --target sm_90 (or sm_80) with it")
    target = _target(args)
    if target and _interpreting():  # the real compiler cannot see kernels the interpreter has wrapped
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        argv = list(args.argv) + ([] if args.target else ["--target", target])
        done = subprocess.run([sys.executable, "-m", "convc.cli", *argv], env=env, check=False,
                              capture_output=True, text=True)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    net = load_model(args.model, args.batch, parse_input(args.input))
    t0 = time.perf_counter()
    extra = {"target": target} if target else {}
    model = convc_compile(net, backend=args.backend, dtype=args.dtype, timing=args.timing,
                          dump_ir=args.dump_ir, **compile_options(args), **extra,
                          **batch_options(args))
    if target:
        report = model.static_report()  # type: ignore[attr-defined]
        if args.emit:
            model.emit(args.emit)  # type: ignore[attr-defined]
        if args.json:
            print_json(report)
            return 0
        console.print(model.report_text(report), markup=False, soft_wrap=True)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - t0
    records = model.pass_records
    if args.timing or args.check_numerics:
        table = make_table(f"{net.name}: pass pipeline -O{args.opt_level} (error: vs the original graph)",
                           ["pass", "package", ("ms", "right"), "nodes", "changed", "error"])
        for r in records:
            table.add_row(r.name, r.origin, f"{r.seconds * 1e3:.1f}", f"{r.nodes_before}->{r.nodes_after}",
                          "yes" if r.changed else "no", "" if r.error is None else f"{r.error:.2e}")
        console.print(keep_whole(table, "pass", words=("nodes", "ms", "changed", "error", "package")))
    if args.print_ir:
        sys.stdout.write(to_text(model.graph) + "\n")  # the printer's lines, never re-wrapped
    if args.emit:
        emit = getattr(model, "emit", None)
        if emit is None:
            raise OptionError(f"--emit: backend '{args.backend}' does not emit kernels (try --backend triton)")
        emit(args.emit)
        console.print(f"wrote kernels and IR to {args.emit}")
    if args.dump_ir:
        console.print(f"wrote the IR after each pass to {args.dump_ir}")
    if args.output:
        from convc.artifact import save_compiled

        written = save_compiled(model, args.output)
        console.print(f"wrote {args.output} ({written.stat().st_size / 1e6:.2f} MB; load it with "
                      f"convc.load_compiled or `convc run {args.output}`)")
    ops: dict[str, int] = {}
    for n in model.graph.nodes():
        if n.op not in ("param", "input"):
            ops[n.op] = ops.get(n.op, 0) + 1
    console.print(f"compiled {net.name} for {args.backend} ({args.dtype}, -O{args.opt_level}) in {seconds:.2f} s: "
                  f"{len(records)} passes; " + ", ".join(f"{v} {k}" for k, v in sorted(ops.items())))
    return 0
