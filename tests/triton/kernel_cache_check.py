"""Saved Triton kernels as Triton cache entries, checked with the real compiler for sm_90 and no GPU.
Run as a script without TRITON_INTERPRET, in two processes (the second has empty in-memory caches):

    python tests/triton/kernel_cache_check.py save DIR      # compile, save DIR/m.convc, compare, install
    python tests/triton/kernel_cache_check.py launch DIR    # the JIT's launch path finds every kernel

`save` compiles a small model for sm_90 with TRITON_CACHE_DIR=DIR/written, saves it, and checks that the
artifact holds exactly the files Triton wrote there; then it installs them into DIR/restored (as loading
on a GPU does) and checks Triton's layout: the group file lists paths inside the new cache, every file
is byte-equal, a second install writes nothing, and kernels for another architecture or Triton version
are refused. `launch` points TRITON_CACHE_DIR at DIR/restored and takes every launch of the saved model
through the JIT (warmup with a stand-in driver for sm_90, as a GPU launch would on an H100): Triton must
report a cache hit for each and write no new entry. Prints "ok: ..." lines; exits 1 on the first failure.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)

from convc.backends.triton.kernel_cache import (
    check_entries,
    compile_through_jit,
    from_artifact,
    install_entries,
)
from convc.backends.triton.targets import GPU_TARGETS

import convc
from convc.artifact import load_compiled, read_artifact, save_compiled
from convc.dsl import Network
from convc.errors import BackendError


def small_net() -> Network:
    net = Network("cached", seed=0)
    x = net.input((2, 8, 6, 6))
    y = net.relu(net.conv2d(x, 16, 3, padding=1, name="c1"))
    net.output(net.linear(net.flatten(net.global_avg_pool(y)), 4, name="fc"))
    return net


def cache_folders(root: Path) -> dict[str, Path]:
    """Triton cache key (hex, from each entry's metadata) -> its folder under `root`."""
    found = {}
    for group in root.glob("*/__grp__*.json"):
        meta = json.loads((group.parent / group.name.removeprefix("__grp__")).read_text())
        found[meta["hash"]] = group.parent
    return found


def save(work: Path) -> None:
    import triton

    os.environ["TRITON_CACHE_DIR"] = str(work / "written")
    model = convc.compile(small_net(), backend="triton", dtype="float32", target="sm_90")
    path = save_compiled(model, work / "m.convc")
    manifest, files = read_artifact(path)
    saved = manifest["models"][next(iter(manifest["models"]))]["binaries"]
    entries = from_artifact({name: files[entry] for name, entry in saved.items()})
    written = cache_folders(work / "written")
    assert entries and set(entries) <= set(written), (sorted(entries), sorted(written))
    for key, got in entries.items():
        folder = written[key]
        on_disk = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith("__grp__")}
        assert got == on_disk, (key, sorted(got), sorted(on_disk))
        assert any(name.endswith(".cubin") for name in got) and any(name.endswith(".ptx") for name in got)
    print(f"ok: the artifact holds exactly the files Triton wrote for {len(entries)} sm_90 kernels")

    os.environ["TRITON_CACHE_DIR"] = str(work / "restored")
    assert install_entries(entries, arch=90) == len(entries)
    restored = cache_folders(work / "restored")
    assert set(restored) == set(entries)
    for key, folder in restored.items():
        group_file = next(folder.glob("__grp__*.json"))
        paths = json.loads(group_file.read_text())["child_paths"]
        assert set(paths) == set(entries[key]), (key, sorted(paths))
        for name, child in paths.items():
            assert Path(child).parent == folder and Path(child).read_bytes() == entries[key][name]
        assert not list(folder.glob("tmp.*")), "a temporary folder was left behind"
    assert install_entries(entries, arch=90) == 0
    print("ok: installed in Triton's cache layout; a second install writes nothing")

    for arch, version, named in ((80, triton.__version__, "sm_90"), (90, "0.0.0", "Triton 0.0.0")):
        try:
            check_entries(entries, arch, version)
        except BackendError as e:
            assert named in str(e) and "Compile the model again" in str(e), str(e)
        else:
            raise AssertionError(f"kernels for sm_90 were accepted for sm_{arch}, Triton {version}")
    print("ok: kernels for another architecture or Triton version are refused")


def launch(work: Path) -> None:
    from triton import knobs

    os.environ["TRITON_CACHE_DIR"] = str(work / "restored")
    before = set(cache_folders(work / "restored"))
    hits: list[bool] = []
    knobs.compilation.listener = lambda **report: hits.append(bool(report["cache_hit"]))
    model = load_compiled(work / "m.convc")
    for one in model.launches:
        compile_through_jit(one, GPU_TARGETS["sm_90"])
    assert hits and all(hits), hits
    assert set(cache_folders(work / "restored")) == before, "the JIT compiled a kernel again"
    print(f"ok: the JIT's launch path found all {len(hits)} kernel variants in the restored cache")


if __name__ == "__main__":
    {"save": save, "launch": launch}[sys.argv[1]](Path(sys.argv[2]))
