"""bench/gpu_results.py: a campaign folder's rows become the results record and issue 12's goals, with
ratios and roofline shares worked out by hand here from the same rows."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_results.py"
_spec = importlib.util.spec_from_file_location("gpu_results", SCRIPT)
assert _spec is not None and _spec.loader is not None
gpu_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_results)

ENV = {"device_kind": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "driver": "570.1", "torch": "2.11.0",
       "triton": "3.6.0", "date": "2026-12-02T09:00:00+00:00"}


def bench_row(model: str, batch: int, backend: str, ms: float, graphs: bool = False,
              **kw: Any) -> dict[str, Any]:
    return {"model": model, "dtype": "float16", "autotune": False, "cuda_graphs": graphs, "backend": backend,
            "batch": batch, "status": "ok", "time_ms": ms, "images_per_s": batch / ms * 1e3,
            "numerics_ok": True, **kw}


# layer3's 3x3 at batch 64: 256 -> 256 channels on 14x14, stride 1, padding 1.
SMOKE = {"model": "resnet50", "layer": "layer3.0.conv2", "shape": [64, 256, 14, 14], "out_channels": 256,
         "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "groups": 1, "dtype": "float16",
         "triton_ms": 0.025, "torch_ms": 0.02}


def write_campaign(folder: Path, untuned: list[dict[str, Any]], compiled: list[dict[str, Any]]) -> None:
    folder.mkdir()
    (folder / "environment.json").write_text(json.dumps(ENV))
    (folder / "bench_untuned.jsonl").write_text("".join(json.dumps(r) + "\n" for r in untuned))
    (folder / "bench_compile.jsonl").write_text("".join(json.dumps(r) + "\n" for r in compiled) + '{"cut sh')
    (folder / "smoke.jsonl").write_text(json.dumps(SMOKE) + "\n")


def test_goals_from_a_campaign_folder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    untuned = [bench_row("resnet50", 64, "triton", 30.0), bench_row("resnet50", 64, "torch", 40.0),
               bench_row("resnet50", 256, "triton", 130.0), bench_row("resnet50", 64, "triton", 28.0),
               bench_row("resnet50", 64, "triton", 10.0, status="error"),  # a failed row never counts
               bench_row("resnet50", 256, "triton", 90.0, numerics_ok=False)]
    compiled = [bench_row("resnet50", 64, "torch-compile", 35.0),
                bench_row("resnet50", 256, "torch-compile", 140.0),
                bench_row("resnet50", 1, "triton", 1.7, graphs=True),
                bench_row("resnet50", 1, "torch-compile", 2.0, graphs=True),
                bench_row("resnet50", 1, "torch-compile", 0.5)]  # eager mode: not the CUDA-graph goal's
    write_campaign(folder, untuned, compiled)
    summary = gpu_results.summarize(folder)
    goals = {g["goal"].split(":")[0]: g for g in summary["goals"]}
    assert goals["resnet50 batch 64"]["measured"] == pytest.approx(35.0 / 28.0)  # 1.25: met
    assert goals["resnet50 batch 64"]["met"] is True
    assert goals["resnet50 batch 256"]["measured"] == pytest.approx(140.0 / 130.0) and not goals[
        "resnet50 batch 256"]["met"]
    batch1 = goals["resnet50 batch 1"]
    assert batch1["measured"] == pytest.approx(1.7 / 2.0) and batch1["met"]
    assert goals["vgg16 batch 64"]["measured"] is None and goals["vgg16 batch 64"]["met"] is None
    # The roofline floor by hand: 2 * 64*14*14 * 256 * 256*9 FLOPs at 989 TFLOP/s against 2 bytes x
    # (2 x 64*256*14*14 activations + 256*256*9 weights) at 3.35 TB/s: compute-bound, 0.01496 ms, so
    # 0.025 ms is 0.6 of the floor (met); 0.04 ms would be 0.37.
    flops = 2 * 64 * 14 * 14 * 256 * 256 * 9
    moved = 2 * (2 * 64 * 256 * 14 * 14 + 256 * 256 * 9)
    floor_ms = max(flops / 989e12, moved / 3.35e12) * 1e3
    [roof] = [g for g in summary["goals"] if "roofline" in g["goal"]]
    assert roof["measured"] == pytest.approx(floor_ms / 0.025) and roof["met"] is True
    assert floor_ms == pytest.approx(0.01496, rel=1e-3)
    slow = gpu_results.roofline_goals([{**SMOKE, "triton_ms": 0.04}], ENV["device_name"])
    assert slow[0]["measured"] == pytest.approx(floor_ms / 0.04) and slow[0]["met"] is False
    assert len(summary["rows"]["bench_compile.jsonl"]) == 5  # the line cut short is skipped


def test_the_record_holds_every_row_and_the_summary_names_the_machine(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "run"
    write_campaign(folder, [bench_row("resnet50", 64, "triton", 30.0)], [])
    assert gpu_results.main([str(folder), "--save", str(tmp_path / "results")]) == 0
    printed = capsys.readouterr().out
    assert "NVIDIA H100 80GB HBM3 (driver 570.1, torch 2.11.0, triton 3.6.0), 2026-12-02" in printed
    assert "| resnet50 | 64 | triton | no | no | 30 |" in printed and "not measured" in printed
    record = json.loads((tmp_path / "results" / "gpu_2026-12-02_nvidia-h100-80gb-hbm3.json").read_text())
    assert record["environment"] == ENV and record["rows"]["smoke.jsonl"] == [SMOKE]


def test_a_cpu_dry_run_has_no_roofs_and_a_missing_folder_is_refused(tmp_path: Path) -> None:
    assert gpu_results.roofline_goals([SMOKE], "cpu")[0]["met"] is None
    assert gpu_results.main([str(tmp_path / "absent")]) == 2
