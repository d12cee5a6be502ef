"""Caches on disk: racing processes keep each other's entries, corrupt entries are dropped and tuned again,
a cache folder that is a file is named. (The autotune cache lost updates in racing runs.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from bad_helpers import raises_naming, tiny_net

import convc
from convc.errors import OptionError

CONFIGS = [{"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 2},
           {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 2}]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _gemm_launch() -> Any:
    import torch
    from convc.backends.triton.launch import Launch, View

    out = View(torch.zeros(64), 0, 8, 8, 8)

    class Kernel:
        __name__ = "fake_gemm"

        def __getitem__(self, grid: tuple[int, ...]) -> Any:
            return lambda *args, **kw: out.as_matrix().copy_(torch.ones(8, 8))

    return Launch("fc", Kernel(), lambda cfg: (1,), (), {}, dict(CONFIGS[0]), family="gemm", out=out,
                  tune_key=(8, 8, 8))


@pytest.mark.parametrize("block_m", [3, 65536])
def test_a_corrupt_autotune_entry_is_dropped_and_tuned_again(cache_dir: Path, block_m: int) -> None:
    from convc.backends.triton import autotune

    launch = _gemm_launch()
    key = autotune.Tuner.key(launch, "float32")
    cache_dir.mkdir()
    bad = {**CONFIGS[1], "BLOCK_M": block_m}
    (cache_dir / autotune.CACHE_FILE).write_text(json.dumps(
        {"version": autotune.CACHE_VERSION, "entries": {key: {"config": bad}}}))
    timed: list[dict[str, Any]] = []
    tuner = autotune.Tuner(enabled=True, bench=lambda run: timed.append(run.config) or 1.0,
                           candidates=lambda family, sizes, *rest: [dict(c) for c in CONFIGS])
    with pytest.warns(UserWarning) if block_m == 65536 else nullcontext():
        chosen = tuner.choose(launch, "float32")
    assert chosen.config in CONFIGS and timed == CONFIGS  # measured again, the corrupt one never launched
    tuner.save()
    entries = json.loads((cache_dir / autotune.CACHE_FILE).read_text())["entries"]
    assert entries[key]["config"] in CONFIGS


def test_a_cache_folder_that_is_a_file_is_named(cache_dir: Path) -> None:
    cache_dir.write_text("not a folder")
    net = tiny_net()
    raises_naming(OptionError, ("CONVC_CACHE_DIR", str(cache_dir)),
                  lambda: convc.compile(net, backend="numpy", opt_level=2))
    from convc.backends.triton import autotune

    raises_naming(OptionError, "CONVC_CACHE_DIR", lambda: autotune.Tuner(enabled=True))


_RACER = textwrap.dedent("""
    import sys
    from pathlib import Path
    kind, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 2}
    for i in range(n):
        if kind == "autotune":
            from convc.backends.triton.autotune import Tuner
            t = Tuner(enabled=False)
            t.entries[f"gemm|{who}-{i}"] = {"config": config}
            t.dirty = True
            t.save()
        else:
            from convc.passes.plan import PlanCache
            c = PlanCache("numpy", "cpu", "float32", "model", 1).load()
            c.put(f"{who}-{i}", ("direct", "im2col"), "direct", {"direct": 1.0}, {})
            assert c.save() is None
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["autotune", "plan"])
def test_racing_writers_lose_no_cache_entry(tmp_path: Path, cache_dir: Path, kind: str) -> None:
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    env = {**os.environ, "CONVC_CACHE_DIR": str(cache_dir), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "TRITON_INTERPRET": "1"}
    n = 60
    procs = [subprocess.Popen([sys.executable, str(script), kind, who, str(n)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in "ab"]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    if kind == "autotune":
        from convc.backends.triton import autotune

        entries = json.loads((cache_dir / autotune.CACHE_FILE).read_text())["entries"]
    else:
        [path] = (cache_dir / "plans").glob("*.json")
        entries = json.loads(path.read_text())["entries"]
    expected = {f"{who}-{i}" for who in "ab" for i in range(n)}
    assert {k.removeprefix("gemm|") for k in entries} == expected
