"""The static kernel report: every launch of a model compiled for a GPU target, and what the compiler made
of it (registers, spills, shared memory, occupancy, pipelined loops, wgmma / TMA, grid in waves).

    model = convc.compile(net, backend="triton", dtype="float16", target="sm_90")   # no GPU needed
    report = model.static_report()          # {"target": "sm_90", ..., "kernels": [{...}, ...]}
    model.emit("kernels/")                  # + per kernel its source, PTX, cubin; report.json, report.txt

How to read a row: `ctas_per_sm` is how many CTAs fit on one SM at once (registers, shared memory, warps);
`waves` is the grid over (SMs x ctas_per_sm): under 1 the machine is partly idle, 1.1 leaves a ragged last
wave. `pipelined_loops` counts loops whose body prefetches with cp.async / TMA; `depth` 1 means that loop
is the kernel's outermost loop (a pipelined loop nested in others fills and drains once per outer step).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convc.backends.triton.aot import compile_launch, kernel_stats, variant_key
from convc.backends.triton.emit import standalone_source
from convc.backends.triton.launch import Launch
from convc.backends.triton.targets import GpuTarget
from convc.serialize import atomic_write

if TYPE_CHECKING:
    from convc.backends.triton.module import TritonModule

COLUMNS = ("layer", "kernel", "tile", "regs", "spill", "smem KB", "CTA/SM", "pipe", "wgmma", "tma", "waves")


def _tile(config: dict[str, Any]) -> str:
    dims = [str(config[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if k in config]
    launch = f" w{config['num_warps']}s{config.get('num_stages', 3)}" if "num_warps" in config else ""
    return "x".join(dims) + launch + (f" tma{config['TMA']}" if config.get("TMA") else "")


def launch_row(launch: Launch, target: GpuTarget) -> dict[str, Any]:
    """One report entry: the launch, its compiled variant's statistics and its occupancy on `target`."""
    stats = kernel_stats(compile_launch(launch, target))
    ctas = 1
    for extent in launch.grid:
        ctas *= int(extent)
    per_sm = target.ctas_per_sm(stats.registers, stats.num_warps, stats.shared_memory)
    return {
        "kernel": variant_key(launch, target), "function": launch.name, "layer": launch.node,
        "family": launch.family, "config": dict(launch.config), "meta": dict(launch.meta),
        "registers": stats.registers, "spills": stats.spills, "shared_memory": stats.shared_memory,
        "num_warps": stats.num_warps, "num_stages": stats.num_stages, "ctas_per_sm": per_sm,
        "warps_per_sm": per_sm * stats.num_warps, "loops": stats.loops,
        "pipelined_loops": stats.pipelined_loops,
        "pipelined_depth": stats.pipelined_depth, "wgmma": stats.wgmma, "mma": stats.mma, "tma": stats.tma,
        "cp_async": stats.cp_async, "tma_modes": launch.tma, "grid": list(launch.grid), "ctas": ctas,
        "waves": target.waves(ctas, per_sm) if per_sm else None,
    }


def static_report(model: TritonModule, target: GpuTarget) -> dict[str, Any]:
    """The report of the model's current variant (its declared input shapes) for `target`."""
    return {"target": target.name, "part": target.part, "sms": target.sms, "model": model.graph.name,
            "dtype": model.dtype, "input_shapes": [list(s) for s in model.variant(model._declared).shapes],
            "kernels": [launch_row(launch, target) for launch in model.variant(model._declared).launches]}


def report_lines(report: dict[str, Any]) -> list[list[str]]:
    """The report as table rows of COLUMNS (strings), for a console table or a text file."""
    rows = []
    for k in report["kernels"]:
        rows.append([k["layer"], k["function"].removesuffix("_kernel"), _tile(k["config"]),
                     str(k["registers"]),
                     str(k["spills"]), f"{k['shared_memory'] / 1024:.0f}", str(k["ctas_per_sm"]),
                     f"{k['pipelined_loops']}@{k['pipelined_depth']}" if k["pipelined_loops"] else "0",
                     "yes" if k["wgmma"] else "-", str(k["tma"]) if k["tma"] else "-",
                     "-" if k["waves"] is None else f"{k['waves']:.2f}"])
    return rows


def report_text(report: dict[str, Any]) -> str:
    rows = [list(COLUMNS)] + report_lines(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    head = (f"{report['model']} ({report['dtype']}, input {report['input_shapes']}) for {report['target']} "
            f"({report['part']}, {report['sms']} SMs)")
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([head] + lines) + "\n"


def emit_static(model: TritonModule, target: GpuTarget, directory: Path) -> dict[str, Any]:
    """Writes each distinct kernel variant's source (importable with triton alone), PTX and cubin under
    directory/kernels/, and the report as report.json and report.txt; returns the report."""
    report = static_report(model, target)
    for launch in model.variant(model._declared).launches:
        key = variant_key(launch, target)
        compiled = compile_launch(launch, target)
        base = directory / "kernels" / key
        atomic_write(base.with_suffix(".py"), standalone_source(launch.kernel).encode())
        atomic_write(base.with_suffix(".ptx"), compiled.asm["ptx"].encode())
        atomic_write(base.with_suffix(".cubin"), bytes(compiled.asm["cubin"]))
    atomic_write(directory / "report.json", (json.dumps(report, indent=1) + "\n").encode())
    atomic_write(directory / "report.txt", report_text(report).encode())
    return report
