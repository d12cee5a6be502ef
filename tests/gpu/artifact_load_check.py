"""Loads a saved Triton model in a fresh process on the GPU and runs it: its kernels must come from the
file, through Triton's disk cache, with no compile. Run by tests/gpu/test_triton_gpu_artifact.py with
TRITON_CACHE_DIR pointing at an empty folder:

    python tests/gpu/artifact_load_check.py DIR [aot]   # DIR/small.convc, DIR/x.npy, DIR/want.npy

`aot`: the file was compiled ahead of time (--target for this GPU's architecture), so loading picks the
CUDA device itself; its untuned kernels are compared with the tuned model's outputs within the float32
budget instead of bit for bit.
Prints "ok: ..." and exits 0, or fails an assertion naming what compiled.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from triton import knobs

from convc.artifact import load_compiled
from convc.numerics import budget, rel_err


def main(work: Path, ahead_of_time: bool) -> None:
    cache = Path(os.environ["TRITON_CACHE_DIR"])
    reports: list[dict] = []
    knobs.compilation.listener = lambda **report: reports.append(report)
    model = load_compiled(work / "small.convc")
    installed = {p.name for p in cache.iterdir()} if cache.exists() else set()
    assert installed, "loading wrote no kernel into Triton's cache"
    got = model.run(np.load(work / "x.npy"))[0]
    if ahead_of_time:
        assert rel_err(got, np.load(work / "want.npy")) <= budget("float32", whole_model=True)
    else:
        np.testing.assert_array_equal(got, np.load(work / "want.npy"))
    compiled = [r["src"].name for r in reports if not r["cache_hit"]]
    assert reports and not compiled, f"kernels compiled after loading: {compiled or 'none launched'}"
    assert {p.name for p in cache.iterdir()} == installed, "new entries appeared in Triton's cache"
    print(f"ok: {len(reports)} kernel variants loaded from the file's {len(installed)} cache entries, "
          f"none compiled; outputs equal the saved model's")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] == ["aot"])
