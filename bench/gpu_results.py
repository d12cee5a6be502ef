"""Turns a GPU campaign's output folder (bench/gpu_campaign.sh) into the project's record: one JSON file
under bench/results/ naming the GPU, driver, torch and triton and holding every row, and a Markdown
summary (the whole-model table and issue 12's goals, each measured or "not measured") for the README and
bench/NOTES.md.

Goals (fp16, channels-last, one run side by side): ResNet-50 at batch 64 and 256 at least 1.2x
torch.compile's throughput; at batch 1 with CUDA graphs at most 0.9x reduce-overhead's time; VGG-16 at
batch 64 at least 1.2x torch.compile; every 3x3 layer of the smoke test (batch 64) at least half of its
roofline floor: max(FLOPs / peak FLOP/s, bytes / peak bandwidth), the device's datasheet roofs
(convc.device_profiles), bytes = input + output + weights once each.

    python bench/gpu_results.py OUTDIR [--save bench/results]     # prints the Markdown summary
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from convc.device_profiles import find_profile
from convc.serialize import atomic_write

ROW_FILES = ("smoke.jsonl", "bench_untuned.jsonl", "bench_compile.jsonl", "bench_tuned.jsonl")
ELEMENT_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
# (model, batch, CUDA graphs, target ratio, at least): triton against torch.compile in the same mode.
SPEED_GOALS = (("resnet50", 64, False, 1.2, True), ("resnet50", 256, False, 1.2, True),
               ("resnet50", 1, True, 0.9, False), ("vgg16", 64, False, 1.2, True))
ROOFLINE_GOAL = 0.5


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of one result file; a line cut short by the budget's kill is skipped."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def fastest(rows: list[dict[str, Any]], model: str, batch: int, backend: str, graphs: bool) -> float | None:
    """The shortest fp16 time (ms) of a backend's correct rows for one model and batch, or None."""
    times = [r["time_ms"] for r in rows if r.get("model") == model and r.get("batch") == batch
             and r.get("backend") == backend and bool(r.get("cuda_graphs")) == graphs
             and r.get("dtype", "float16") == "float16" and r.get("status") == "ok"
             and r.get("numerics_ok") is not False and r.get("time_ms")]
    return min(times) if times else None


def speed_goals(bench: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for model, batch, graphs, target, at_least in SPEED_GOALS:
        ours = fastest(bench, model, batch, "triton", graphs)
        theirs = fastest(bench, model, batch, "torch-compile", graphs)
        mode = "reduce-overhead, CUDA graphs" if graphs else "torch.compile"
        if at_least:
            goal = f"{model} batch {batch}: throughput >= {target}x {mode}"
            ratio = theirs / ours if ours and theirs else None  # images/s ratio = inverse time ratio
        else:
            goal = f"{model} batch {batch}: time <= {target}x {mode}"
            ratio = ours / theirs if ours and theirs else None
        met = None if ratio is None else (ratio >= target if at_least else ratio <= target)
        out.append({"goal": goal, "measured": ratio, "met": met,
                    "detail": f"triton {ours} ms, {mode} {theirs} ms"})
    return out


def roofline_floor_ms(row: dict[str, Any], flops_per_s: float, bytes_per_s: float) -> float:
    """The least time a conv layer of a smoke row can take on a device with these roofs."""
    n, c, h, w = row["shape"]
    (kh, kw), (sh, sw), (ph, pw) = row["kernel"], row["stride"], row["padding"]
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    o, g = row["out_channels"], row["groups"]
    flops = 2 * n * oh * ow * o * (c // g) * kh * kw
    moved = ELEMENT_BYTES[row["dtype"]] * (n * c * h * w + n * o * oh * ow + o * (c // g) * kh * kw)
    return max(flops / flops_per_s, moved / bytes_per_s) * 1e3


def roofline_goals(smoke: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    profile = find_profile(device)
    layers = [r for r in smoke if r.get("kernel") == [3, 3] and r.get("triton_ms") and r["shape"][0] == 64]
    if profile is None or not layers:
        why = f"no roofs for {device!r}" if profile is None else "no 3x3 smoke rows at batch 64"
        return [{"goal": f"3x3 layers at batch 64: >= {ROOFLINE_GOAL} of the roofline floor",
                 "measured": None, "met": None, "detail": why}]
    out = []
    for r in layers:
        peaks = profile.peaks(r["dtype"], source="datasheet")
        share = roofline_floor_ms(r, peaks.flops_per_s, peaks.bytes_per_s) / r["triton_ms"]
        out.append({"goal": f"{r['model']} {r['layer']} (3x3, batch 64): >= {ROOFLINE_GOAL} of the roofline "
                            f"floor", "measured": share, "met": share >= ROOFLINE_GOAL,
                    "detail": f"triton {r['triton_ms']:.3f} ms, cuDNN {r.get('torch_ms', float('nan')):.3f} "
                              f"ms"})
    return out


def summarize(folder: Path) -> dict[str, Any]:
    """Every row of the campaign in `folder`, its environment, and the goals measured from them."""
    env_path = folder / "environment.json"
    environment = json.loads(env_path.read_text()) if env_path.exists() else {}
    rows = {name: read_rows(folder / name) for name in ROW_FILES}
    bench = rows["bench_untuned.jsonl"] + rows["bench_compile.jsonl"] + rows["bench_tuned.jsonl"]
    goals = speed_goals(bench) + roofline_goals(rows["smoke.jsonl"], environment.get("device_name", ""))
    return {"environment": environment, "rows": rows, "goals": goals}


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def markdown(summary: dict[str, Any]) -> str:
    env = summary["environment"]
    head = (f"GPU campaign on {env.get('device_name', '?')} (driver {env.get('driver', '?')}, torch "
            f"{env.get('torch', '?')}, triton {env.get('triton', '?')}), {env.get('date', '?')[:10]}")
    lines = [head, "", "| model | batch | backend | CUDA graphs | tuned | ms | images/s | vs torch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    bench = [r for name in ("bench_untuned.jsonl", "bench_compile.jsonl", "bench_tuned.jsonl")
             for r in summary["rows"][name]]
    for r in sorted(bench, key=lambda r: (r.get("model", ""), r.get("batch", 0), r.get("backend", ""))):
        lines.append(f"| {r.get('model')} | {r.get('batch')} | {r.get('backend')} | "
                     f"{'yes' if r.get('cuda_graphs') else 'no'} | {'yes' if r.get('autotune') else 'no'} | "
                     f"{_cell(r.get('time_ms'))} | {_cell(r.get('images_per_s'))} | "
                     f"{_cell(r.get('speedup_vs_torch'))} |")
    lines += ["", "| goal | measured | met | detail |", "| --- | --- | --- | --- |"]
    for g in summary["goals"]:
        met = "not measured" if g["met"] is None else "yes" if g["met"] else "NO"
        lines.append(f"| {g['goal']} | {_cell(g['measured'])} | {met} | {g['detail']} |")
    return "\n".join(lines) + "\n"


def save(summary: dict[str, Any], directory: Path) -> Path:
    """bench/results/gpu_<date>_<device>.json (written atomically), named so runs on two GPUs never clash."""
    env = summary["environment"]
    device = re.sub(r"[^a-z0-9]+", "-", env.get("device_name", "unknown").lower()).strip("-")
    path = directory / f"gpu_{env.get('date', 'undated')[:10]}_{device}.json"
    atomic_write(path, (json.dumps(summary, indent=1, default=str) + "\n").encode())
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the campaign's OUTDIR")
    parser.add_argument("--save", type=Path, metavar="DIR", help="write the JSON record into DIR")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"gpu_results.py: {args.folder} is not a campaign folder (bench/gpu_campaign.sh OUTDIR)",
              file=sys.stderr)
        return 2
    summary = summarize(args.folder)
    sys.stdout.write(markdown(summary))
    if args.save:
        print(f"wrote {save(summary, args.save)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
