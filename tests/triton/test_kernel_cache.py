"""A saved Triton model carries its kernels as entries of Triton's disk cache: exactly the files Triton
wrote for an sm_90 compile (no GPU needed), installed in the layout Triton reads, found by the JIT's own
launch path without compiling, and refused for another architecture or Triton version. The GPU half
(a real launch after load_compiled) is tests/gpu/test_triton_gpu_artifact.py."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from convc.backends.triton.kernel_cache import check_entries, from_artifact, to_artifact

from convc.errors import BackendError, FileFormatError

SCRIPT = Path(__file__).with_name("kernel_cache_check.py")
KEY = hashlib.sha256(b"a kernel").hexdigest()


def entry(arch: int = 90, version: str = "3.8.0", key: str = KEY) -> dict[str, bytes]:
    meta = {"hash": key, "name": "conv_kernel", "target": {"backend": "cuda", "arch": arch, "warp_size": 32},
            "triton_version": version}
    return {"conv_kernel.json": json.dumps(meta).encode(), "conv_kernel.cubin": b"\x7fELF..."}


def test_artifact_names_round_trip_and_stay_inside_their_cache_folder() -> None:
    entries = {KEY: entry()}
    flat = to_artifact(entries)
    assert sorted(flat) == [f"triton-cache/{KEY}/conv_kernel.cubin", f"triton-cache/{KEY}/conv_kernel.json"]
    assert from_artifact(flat) == entries
    assert from_artifact({"conv_kernel_0123abcd.cubin": b"old"}) == {}  # an earlier convc's bare cubin
    for bad in (f"triton-cache/{KEY}/..", f"triton-cache/{KEY[:12]}/k.cubin", "triton-cache/x/y/z",
                f"triton-cache/{KEY}/__grp__k.json", f"elsewhere/{KEY}/k.cubin"):
        with pytest.raises(FileFormatError, match="not a Triton cache entry"):
            from_artifact({bad: b""})


def test_entries_for_another_gpu_or_triton_or_with_foreign_metadata_are_refused() -> None:
    check_entries({KEY: entry()}, 90, "3.8.0")
    with pytest.raises(BackendError, match=r"compiled for sm_90 by Triton 3\.8\.0; here: sm_80"):
        check_entries({KEY: entry()}, 80, "3.8.0")
    with pytest.raises(BackendError, match=r"here: sm_90, Triton 3\.9\.0"):
        check_entries({KEY: entry()}, 90, "3.9.0")
    other = hashlib.sha256(b"another kernel").hexdigest()
    with pytest.raises(FileFormatError, match="belongs to another kernel"):
        check_entries({other: entry()}, 90, "3.8.0")


@pytest.mark.slow
def test_saved_kernels_are_tritons_own_cache_entries_and_the_jit_finds_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    outputs = []
    for phase in ("save", "launch"):  # two processes: the second starts with empty in-memory caches
        done = subprocess.run([sys.executable, str(SCRIPT), phase, str(tmp_path)], env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        if "ptxas" in output and ("not found" in output or "No such file" in output):
            pytest.skip("this Triton install has no ptxas to assemble sm_90 code")
        assert done.returncode == 0, output[-4000:]
        outputs.append(done.stdout)
    assert outputs[0].count("ok:") == 3 and "found all" in outputs[1], outputs


def test_an_unwritable_triton_cache_warns_and_the_load_goes_on(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import triton
    from convc.backends.triton.kernel_cache import install_entries

    version = triton.__version__
    (tmp_path / "file").write_text("a file where the cache folder belongs")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.warns(UserWarning, match="cannot write the saved Triton kernels .* TRITON_CACHE_DIR"):
        assert install_entries({KEY: entry(version=version)}, arch=90) == 0
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "cache"))
    assert install_entries({KEY: entry(version=version)}, arch=90) == 1
    assert install_entries({KEY: entry(version=version)}, arch=90) == 0  # already there: left alone
