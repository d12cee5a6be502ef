"""bench/gpu_campaign.sh in its dry mode (CPU interpreter, tiny shapes): the script a lent GPU runs must
never be the thing that breaks. Checks the phases ran, wrote parseable results, and stayed within 8 files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_campaign.sh"


@pytest.mark.slow
def test_the_campaign_runs_dry_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "campaign"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(SCRIPT), str(out), "900", "--dry"], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and {"environment.json", "campaign.log", "smoke.jsonl", "bench_untuned.jsonl",
                                "gpu_tests.txt"} <= set(files), files
    assert json.loads((out / "environment.json").read_text())["device_kind"] == "cpu"
    smoke = [json.loads(line) for line in (out / "smoke.jsonl").read_text().splitlines()]
    assert smoke and all(row["ok"] and row["rel_err"] <= row["budget"] for row in smoke)
    bench = [json.loads(line) for line in (out / "bench_untuned.jsonl").read_text().splitlines()]
    assert {row["backend"] for row in bench} == {"triton", "torch"} and not any(row["autotune"] for row in bench)
    assert not any(row["cuda_graphs"] for row in bench)  # the captured batch-1 rows are a phase of their own
    assert "passed" in (out / "gpu_tests.txt").read_text()
    log = (out / "campaign.log").read_text()
    assert "end smoke: exit 0" in log and "end bench_untuned: exit 0" in log and "done in" in log
    assert "| goal | measured | met | detail |" in log  # bench/gpu_results.py's summary of the goals
