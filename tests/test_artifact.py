"""Saved compiled models: one file, loaded and run with no pass and no autotuning, refused when stale or
tampered with, recompiled when asked; outputs equal the original compiled model's."""
from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from batch_models import inputs, small_module, small_net, torch_reference

import convc
from convc.artifact import StaleArtifactError, load_compiled, read_artifact, save_compiled
from convc.batching import BatchedModel
from convc.errors import FileFormatError, OptionError
from convc.numerics import budget, rel_err
from convc.pass_manager import PassManager

CONVC = str(Path(sys.executable).parent / "convc")


@pytest.mark.parametrize("backend, dtype, max_batch", [("numpy", "float64", None), ("numpy", "float32", 4),
                                                       ("torch", "float64", 4), ("torch", "float32", None)])
def test_loaded_model_equals_the_compiled_one_without_any_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, dtype: str,
        max_batch: int | None) -> None:
    module = small_module()
    options = {"device": "cpu"} if backend == "torch" else {}
    model = convc.compile(small_net(copy.deepcopy(module)), backend=backend, dtype=dtype, max_batch=max_batch,
                          **options)
    path = save_compiled(model, tmp_path / "small.convc")
    monkeypatch.setattr(PassManager, "run", lambda *a, **k: pytest.fail("a pass ran while loading"))
    loaded = load_compiled(path)
    assert type(loaded) is type(model) and loaded.backend == backend and loaded.dtype == dtype
    assert loaded.plan == model.plan and loaded.settings == model.settings
    for batch in (1, 3) if max_batch else (1,):
        x = inputs(batch, seed=batch)
        np.testing.assert_array_equal(loaded.run(x)[0], model.run(x)[0])
        want = torch_reference(module, x)
        assert rel_err(loaded.run(x)[0], want) <= max(budget(dtype, whole_model=True), 1e-7)


def test_one_file_with_manifest_buckets_plans_and_hashes(tmp_path: Path) -> None:
    model = convc.compile(small_net(), backend="numpy", max_batch=4)
    path = save_compiled(model, tmp_path / "m.convc")
    assert [p.name for p in tmp_path.iterdir()] == ["m.convc"]  # one file, no temporary left behind
    manifest, files = read_artifact(path)
    assert manifest["format"] == "convc-compiled" and manifest["format_version"] == 1
    assert manifest["buckets"] == [1, 2, 4] and manifest["target"]["convc"] == convc.__version__
    assert manifest["target"]["device"] == "cpu" and manifest["dtype"] == "float32"
    assert manifest["models"]["2"]["plan"]["input_shapes"] == [[2, 3, 8, 8]]
    assert "compiles no kernel binaries" in manifest["binaries_note"]
    weights = {ref for m in manifest["models"].values() for ref in m["params"].values()}
    names = {name for m in manifest["models"].values() for name in m["params"]}
    assert len(weights) == len(names)  # a weight all buckets share is stored once
    assert set(files) == set(manifest["entries"])


def test_file_mode_honours_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = save_compiled(convc.compile(small_net()), tmp_path / "m.convc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _rewrite(path: Path, change: object) -> None:
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    change(files)  # type: ignore[operator]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def _flip_weight(files: dict[str, bytes]) -> None:
    name = next(n for n in files if n.startswith("arrays/"))
    files[name] = files[name][:-4] + bytes(b ^ 1 for b in files[name][-4:])


def _edit_manifest(**changes: object) -> object:
    def change(files: dict[str, bytes]) -> None:
        manifest = json.loads(files["manifest.json"])
        for key, value in changes.items():
            section, _, field = key.partition("__")
            (manifest[section] if field else manifest)[field or section] = value
        files["manifest.json"] = json.dumps(manifest).encode()
    return change


@pytest.mark.parametrize("change, message", [
    (_flip_weight, "corrupt or was modified: the content hash of entries arrays/"),
    (_edit_manifest(dtype="float64"), "the content hash of the manifest does not match"),
    (lambda files: files.pop("graphs/b1.json"), "tampered with or truncated"),
    (lambda files: files.update({"manifest.json": b"[1"}), "no readable manifest.json"),
])
def test_tampered_or_corrupt_files_are_refused(tmp_path: Path, change: object, message: str) -> None:
    path = save_compiled(convc.compile(small_net()), tmp_path / "m.convc")
    _rewrite(path, change)
    with pytest.raises(FileFormatError, match=message):
        load_compiled(path)


def test_truncated_and_missing_files(tmp_path: Path) -> None:
    path = save_compiled(convc.compile(small_net()), tmp_path / "m.convc")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FileFormatError, match="not a readable convc artifact"):
        load_compiled(path)
    with pytest.raises(OptionError, match="does not exist"):
        load_compiled(tmp_path / "none.convc")


def _resign(files: dict[str, bytes], **target: object) -> None:
    """A consistent file made 'elsewhere': the target changed and the content hash recomputed."""
    from convc.artifact import _content_hash

    manifest = json.loads(files["manifest.json"])
    manifest["target"].update(target)
    manifest["content_hash"] = _content_hash(manifest)
    files["manifest.json"] = json.dumps(manifest).encode()


@pytest.mark.parametrize("target, message", [
    ({"convc": "0.0.1"}, "convc 0.0.1 \\(here: "),
    ({"device": "cuda", "gpu": "NVIDIA H100"}, "device cuda \\(here: cpu\\)"),
    ({"packages": {"torch": "1.0"}}, "packages torch 1.0 \\(here: torch "),
])
def test_a_changed_convc_device_or_backend_is_refused_or_recompiled(
        tmp_path: Path, target: dict[str, object], message: str) -> None:
    module = small_module()
    model = convc.compile(small_net(copy.deepcopy(module)), backend="torch", dtype="float64", max_batch=2,
                          device="cpu")
    path = save_compiled(model, tmp_path / "m.convc")
    _rewrite(path, lambda files: _resign(files, **target))
    with pytest.raises(StaleArtifactError, match=message + ".*recompile=True"):
        load_compiled(path)
    with pytest.warns(UserWarning, match="compiling its saved graph again"):
        again = load_compiled(path, recompile=True)
    assert isinstance(again, BatchedModel) and again.buckets == (1, 2)
    x = inputs(2)
    assert rel_err(again.run(x)[0], torch_reference(module, x)) <= 1e-7


def test_cli_compile_o_then_run_the_file(tmp_path: Path) -> None:
    out = subprocess.run([CONVC, "compile", "lenet5", "--batch", "1..4", "-o", "lenet5.convc"], cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "wrote lenet5.convc" in out.stdout
    direct = subprocess.run([CONVC, "run", "lenet5", "--seed", "2", "--batch", "3"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    loaded = subprocess.run([CONVC, "run", "lenet5.convc", "--seed", "2", "--batch", "3"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded lenet5.convc" in loaded.stdout and "no pass" in loaded.stdout
    top = [line for line in direct.stdout.splitlines() if line.startswith("top-5")]
    assert top and top == [line for line in loaded.stdout.splitlines() if line.startswith("top-5")]
    bad = subprocess.run([CONVC, "run", "lenet5.convc", "--batch", "5"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert bad.returncode == 1 and "batch 5 is larger than the maximum" in bad.stderr


def test_the_readmes_artifact_commands_run_as_shown(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    wanted = ("convc compile lenet5 -o", "convc run lenet5.convc", "convc compile lenet5 --batch 1..64")
    lines = [line.split("#")[0].strip() for line in readme.splitlines() if line.strip().startswith(wanted)]
    assert len(lines) == 3
    for line in lines:
        done = subprocess.run([CONVC, *line.split()[1:]], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, (line, done.stderr)
    assert (tmp_path / "lenet5.convc").is_file() and (tmp_path / "lenet5-any.convc").is_file()


@pytest.mark.parametrize("gpu_arch, device", [("sm_90", "cuda"), ("sm_80", None), ("", None)])
def test_a_file_compiled_for_a_gpu_target_runs_on_a_gpu_of_that_architecture(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu_arch: str, device: str | None) -> None:
    from convc import artifact

    net = convc.Network("tiny")
    net.output(net.relu(net.conv2d(net.input((1, 2, 4, 4)), 2, 3)))
    path = save_compiled(convc.compile(net, backend="triton", target="sm_90"), tmp_path / "aot.convc")
    assert read_artifact(path)[0]["target"]["device"] == "meta"
    monkeypatch.setattr(artifact, "local_gpu", lambda: ("a GPU", gpu_arch))
    asked: dict[str, object] = {}

    class Recording:
        name = "triton"

        def compile(self, graph: object, **options: object) -> None:
            asked.update(options)
            raise StopIteration  # what was asked is all this test needs

    monkeypatch.setattr(artifact, "get_backend", lambda name: Recording())
    with pytest.raises(StopIteration):
        load_compiled(path)
    assert asked.get("device") == device and ("target" in asked) == (device is None)
