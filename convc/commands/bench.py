"""`convc bench MODEL`: backends timed side by side, with speed-ups over torch and an output check.

    convc bench resnet50 --backends triton,torch,torch-compile,numpy --batch 1,64 --dtype float16 \\
        --json bench.json --layers --plot roofline.png --markdown

Exit status: 0; 1 when a requested case failed (a backend that can run here but failed to compile or
run) or gave outputs beyond the dtype's budget (fast but wrong); 2 for a bad option (an unknown backend,
a bad batch list); 130 when interrupted, after printing and writing (--json) the cases finished so far.
Backends that cannot run here are rows of the table with the reason, not failures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from convc.benchmark import (
    BenchInterrupted,
    BenchResult,
    TimingSettings,
    bench_layers,
    bench_model,
    cpu_threads,
    set_cpu_threads,
)
from convc.commands.common import (
    add_compile_args,
    add_dtype_arg,
    compile_options,
    human,
    load_model,
    parse_input,
    seed,
    split_list,
)
from convc.commands.ui import keep_whole, make_table
from convc.device_profiles import MachineInfo, Peaks, describe_machine, find_profile
from convc.errors import OptionError
from convc.files import check_output_path
from convc.progress import report as progress_report
from convc.registry import backend_names
from convc.roofline import (
    LayerTiming,
    measure_cpu_peaks,
    measure_gpu_peaks,
    parse_peaks,
    plot_roofline,
    worst_layers,
)
from convc.serialize import write_output
from convc.types import check_dtype

DEFAULT_BACKENDS = "triton,torch,torch-compile,numpy"
console = Console(highlight=False)
PEAK_SOURCES = ("measure", "profile", "datasheet")


def make_console() -> Console:
    """The terminal's width, or COLUMNS (80 by default) when piped: the tables fit either."""
    return Console(highlight=False)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time backends side by side (speed-up over torch, output check)")
    p.add_argument("model", help="a zoo model name (see `convc models`), a .onnx file, or module.py:factory")
    p.add_argument("--input", default=None, metavar="C,H,W", help="input shape without the batch axis")
    p.add_argument("--backends", default=DEFAULT_BACKENDS, metavar="LIST",
                   help=f"comma-separated (default {DEFAULT_BACKENDS})")
    p.add_argument("--batch", default="1", metavar="LIST", help="comma-separated batch sizes, e.g. 1,64 (default 1)")
    add_dtype_arg(p)
    p.add_argument("--repeat", type=int, default=20, help="timed runs per case; the median is shown")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    p.add_argument("--max-seconds", type=float, default=5.0,
                   help="stop repeating a case after this long (at least 3 runs)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="capture CUDA graphs where a backend can (triton cuda_graphs, torch.compile "
                        "reduce-overhead)")
    p.add_argument("--seed", type=seed, default=0, metavar="N", help="seed of the random input")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of torch, NumPy's BLAS and onnxruntime alike (on a busy machine 1 "
                        "avoids OpenMP's spinning)")
    p.add_argument("--json", default=None, metavar="FILE", help="write every number to FILE")
    p.add_argument("--jsonl", default=None, metavar="FILE",
                   help="append each result to FILE as one JSON line the moment it is timed")
    p.add_argument("--no-autotune", dest="autotune", action="store_false",
                   help="triton: run the default tile configurations (no tuning)")
    p.add_argument("--layers", action="store_true",
                   help="time each node of the optimized graph alone and set it against the roofline")
    p.add_argument("--layer-backends", default=None, metavar="LIST",
                   help="backends for --layers (default: every backend that ran)")
    p.add_argument("--peaks", default="measure", metavar="SOURCE",
                   help="roofs for --layers: measure (default), profile (the device table's measured "
                        "figures), datasheet, or FLOPS,BYTES per second such as 989e12,3.35e12")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="write a roofline chart PNG (implies --layers)")
    p.add_argument("--markdown", action="store_true", help="print the results as a Markdown table too")
    add_compile_args(p)
    p.set_defaults(run=run)


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(t) for t in split_list(text)]
    except ValueError:
        batches = []
    if not batches or any(b <= 0 for b in batches):
        raise OptionError(f"--batch {text!r}: expected comma-separated positive integers such as 1,64")
    return list(dict.fromkeys(batches))


def parse_backends(text: str, what: str = "--backends") -> list[str]:
    names = list(dict.fromkeys(split_list(text)))
    known = backend_names()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise OptionError(f"{what}: unknown backend {', '.join(unknown) or '(none given)'}; known backends: "
                          f"{', '.join(known)}")
    return names


def run(args: argparse.Namespace) -> int:
    global console
    console = make_console()
    dtype = check_dtype(args.dtype)
    backends = parse_backends(args.backends)
    batches = parse_batches(args.batch)
    layer_backends = parse_backends(args.layer_backends, "--layer-backends") if args.layer_backends else None
    if args.repeat < 1 or args.warmup < 0:
        raise OptionError("--repeat must be at least 1 and --warmup at least 0")
    if args.peaks not in PEAK_SOURCES:
        parse_peaks(args.peaks)  # a typo fails now, not after the whole-model timings
    if args.threads is not None:
        set_cpu_threads(args.threads)
    for flag, path in (("--json", args.json), ("--jsonl", args.jsonl), ("--plot", args.plot)):
        if path:  # an unwritable report must fail now, not after minutes of timing
            check_output_path(path, flag)
    input_shape = parse_input(args.input)
    load_model(args.model, batches[0], input_shape)  # a bad model name fails now, not after minutes of timing
    settings = TimingSettings(args.warmup, args.repeat, args.max_seconds, args.cuda_graphs, args.seed,
                              args.autotune)
    options = compile_options(args)
    if not args.check_numerics:
        options["check_numerics"] = False  # the bench compares outputs itself; the per-pass check is slow
    machine = describe_machine()
    def write_row(r: BenchResult) -> None:
        if args.jsonl:  # one line per result as it is timed: kept even if the run is cut short
            row = {"model": args.model, "dtype": dtype, "autotune": args.autotune,
                   "cuda_graphs": args.cuda_graphs, **r.to_dict()}
            try:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(row, default=str) + "\n")
            except OSError as e:  # the disk filled or the file went away mid-run
                raise OptionError(f"--jsonl {args.jsonl}: cannot append to it ({e.strerror or e})") from None

    interrupted = False
    try:
        results = bench_model(lambda b: load_model(args.model, b, input_shape), backends, batches, dtype,
                              settings, options, progress=write_row)
    except BenchInterrupted as stop:  # keep what finished: the table and --json show it
        results, interrupted = stop.results, True
    report: dict[str, Any] = {
        "model": args.model, "dtype": dtype, "machine": machine.to_dict(), "command": command_line(args),
        "settings": {"warmup": args.warmup, "repeat": args.repeat, "max_seconds": args.max_seconds,
                     "cuda_graphs": args.cuda_graphs, "seed": args.seed, "opt_level": args.opt_level,
                     "threads": cpu_threads()},
        "batches": batches, "backends": backends, "results": [r.to_dict() for r in results],
        "interrupted": interrupted,
    }
    console.print(keep_whole(results_table(results, args.model, dtype, machine), "backend",
                             words=("time (ms)", "batch", "vs torch", "images/s", "rel. err vs ref", "status"),
                             width=console.width))
    for note in result_notes(results):
        console.print(note, markup=False, soft_wrap=True)
    if (args.layers or args.plot) and not interrupted:
        report.update(run_layers(args, results, dtype, machine, layer_backends, settings))
    if args.markdown:
        sys.stdout.write(markdown(results, args.model, dtype, machine, report["command"]) + "\n")
    if args.json:
        write_output(Path(args.json), (json.dumps(report, indent=1) + "\n").encode(), "--json")
        console.print(f"wrote {args.json}")
    if interrupted:
        console.print(f"[yellow]interrupted: {len(results)} of {len(batches) * len(backends)} cases ran[/]")
        return 130
    failed = [r for r in results if r.numerics_ok is False or r.status == "error"]
    return 1 if failed else 0


def command_line(args: argparse.Namespace) -> str:
    """The command that regenerates these numbers (what the Markdown output says it came from)."""
    parts = ["convc bench", args.model, f"--backends {args.backends}", f"--batch {args.batch}",
             f"--dtype {args.dtype}", f"-O{args.opt_level}"]
    if args.input:
        parts.append(f"--input {args.input}")
    if args.cuda_graphs:
        parts.append("--cuda-graphs")
    if args.threads is not None:
        parts.append(f"--threads {args.threads}")
    return " ".join(parts)


# ---------------------------------------------------------------------------- the results table
def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def title(model: str, dtype: str, machine: MachineInfo) -> str:
    return (f"convc bench: {model}, {dtype} on {machine.device_name} | {machine.date} | torch {machine.torch}"
            f" | triton {machine.triton}")


def _numerics(r: BenchResult) -> str:
    if r.rel_err is None:
        return "-"
    if r.backend == r.reference:
        return "reference"
    mark = "ok" if r.numerics_ok else "WRONG"
    return f"{r.rel_err:.1e} {mark}"


def results_table(results: list[BenchResult], model: str, dtype: str, machine: MachineInfo) -> Table:
    """One row per backend and batch; a backend that did not run shows its status and a numbered note,
    whose text `result_notes` gives (long reasons would wreck the table's columns)."""
    notes = note_numbers(results)
    table = make_table(title(model, dtype, machine), [
        "backend", ("batch", "right"), ("time (ms)", "right"), ("images/s", "right"), ("vs torch", "right"),
        ("rel. err vs ref", "right"), "status"])
    for r in results:
        if r.timing is None:
            colour = "yellow" if r.status == "unavailable" else "red"
            table.add_row(r.backend, str(r.batch), "-", "-", "-", "-",
                          f"[{colour}]{r.status} [{notes[(r.backend, r.reason)]}][/]")
            continue
        speed = f"{r.speedup:.2f}x" if r.speedup is not None else "-"
        numerics = _numerics(r)
        if r.numerics_ok is False:
            numerics = f"[red]{numerics}[/]"
        table.add_row(r.backend, str(r.batch), _ms(r.timing.median_s), f"{r.images_per_s:,.0f}", speed,
                      numerics, f"ok ({r.device}, {r.timing.runs} runs)")
    return table


def note_numbers(results: list[BenchResult]) -> dict[tuple[str, str], int]:
    """(backend, reason) -> note number, one note per distinct reason (usually the same at every batch)."""
    numbers: dict[tuple[str, str], int] = {}
    for r in results:
        if r.timing is None:
            numbers.setdefault((r.backend, r.reason), len(numbers) + 1)
    return numbers


def result_notes(results: list[BenchResult]) -> list[str]:
    return [f"[{n}] {backend}: {reason}" for (backend, reason), n in note_numbers(results).items()]


def markdown(results: list[BenchResult], model: str, dtype: str, machine: MachineInfo, command: str) -> str:
    lines = [
        f"Regenerated by `{command} --markdown` on {machine.date}.",
        (f"Device: {machine.device_name}; driver {machine.driver}, CUDA {machine.cuda}, "
         f"cuDNN {machine.cudnn}; torch {machine.torch}, triton {machine.triton}, numpy {machine.numpy}, "
         f"Python {machine.python}."),
        "",
        "| model | dtype | batch | backend | time (ms) | images/s | speed-up vs torch | rel. err |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.timing is None:
            lines.append(f"| {model} | {dtype} | {r.batch} | {r.backend} | {r.status} | | | |")
            continue
        speed = f"{r.speedup:.2f}x" if r.speedup is not None else ""
        err = "" if r.rel_err is None or r.backend == r.reference else f"{r.rel_err:.1e}"
        lines.append(f"| {model} | {dtype} | {r.batch} | {r.backend} | {_ms(r.timing.median_s)} | "
                     f"{r.images_per_s:,.0f} | {speed} | {err} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- per-layer roofline
def choose_peaks(source: str, device: str, dtype: str, machine: MachineInfo) -> Peaks:
    """The roofs for `device` ('cuda' or 'cpu') from --peaks."""
    if source not in PEAK_SOURCES:
        return parse_peaks(source)
    if device == "cpu":
        if source != "measure":
            raise OptionError(f"--peaks {source}: the device table holds GPUs only; on the CPU use 'measure' "
                              f"or give FLOPS,BYTES")
        return measure_cpu_peaks(dtype)
    if source == "measure":
        return measure_gpu_peaks(dtype)
    profile = find_profile(machine.device_name)
    if profile is None:
        raise OptionError(f"--peaks {source}: no profile for '{machine.device_name}' in the device table; "
                          f"use 'measure' or give FLOPS,BYTES")
    return profile.peaks(dtype, "measured" if source == "profile" else "datasheet")


def run_layers(args: argparse.Namespace, results: list[BenchResult], dtype: str, machine: MachineInfo,
               layer_backends: list[str] | None, settings: TimingSettings) -> dict[str, Any]:
    chosen = [r for r in results if r.status == "ok" and r.graph is not None
              and (layer_backends is None or r.backend in layer_backends)]
    peaks: dict[str, Peaks] = {}
    timings: list[LayerTiming] = []
    failures: list[str] = []
    for i, r in enumerate(chosen):
        if r.device not in peaks:
            progress_report("timing single layers", i, len(chosen), f"measuring the {r.device} roofs")
            peaks[r.device] = choose_peaks(args.peaks, r.device, dtype, machine)
        progress_report("timing single layers", i, len(chosen), f"{r.backend}, batch {r.batch}")
        got, failed = bench_layers(r.graph, r.backend, dtype, peaks[r.device], settings)
        timings += got
        failures += failed
        console.print(keep_whole(layer_table(got, r, peaks[r.device]), "node", width=console.width,
                                 words=("time (ms)", "op", "floor (ms)", "% of floor", "bound", "FLOPs", "bytes")))
    progress_report("timing single layers", len(chosen), len(chosen))
    for f in failures:
        console.print(f"[yellow]layer not timed: {f}[/]")
    if args.plot and timings:
        device = "cuda" if "cuda" in peaks else "cpu"
        on_device = [t for t in timings if t.peaks is peaks[device]]
        path = plot_roofline(on_device, peaks[device], args.plot, title(args.model, dtype, machine))
        console.print(f"wrote {path}")
    return {
        "peaks": {device: p.to_dict() for device, p in peaks.items()},
        "layers": [t.to_dict() for t in timings],
        "worst_layers": {f"{r.backend}/{r.batch}": [t.cost.name for t in worst_layers(
            [t for t in timings if (t.backend, t.batch) == (r.backend, r.batch)])] for r in chosen},
        "layer_failures": failures,
    }


def layer_table(timings: list[LayerTiming], r: BenchResult, peaks: Peaks) -> Table:
    worst = {t.cost.name for t in worst_layers(timings)}
    total = sum(t.seconds for t in timings)
    floor = sum(t.floor_s for t in timings)
    whole = r.timing.median_s if r.timing else float("nan")
    table = Table(title=f"{r.backend}, batch {r.batch}: layers alone sum to {_ms(total)} ms (whole model "
                        f"{_ms(whole)} ms, roofline floor {_ms(floor)} ms); * = worst ten by time above "
                        f"the floor\nroofs: {peaks} ({peaks.source})")
    for col in ("node", "op", "FLOPs", "bytes", "time (ms)", "TFLOP/s", "floor (ms)", "% of floor", "bound"):
        table.add_column(col, justify="left" if col in ("node", "op", "bound") else "right")
    for t in timings:
        mark = "* " if t.cost.name in worst else ""
        table.add_row(mark + t.cost.name, t.cost.op, human(t.cost.flops), human(t.cost.bytes, "B"),
                      _ms(t.seconds), f"{t.achieved_flops_per_s / 1e12:.3f}", _ms(t.floor_s),
                      f"{100 * t.fraction_of_floor:.1f}", t.bound)
    return table
