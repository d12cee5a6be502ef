"""Saved files a careless user, a crash or a racing process leaves behind: each is refused with a
FileFormatError (or SizeLimitError / OptionError) naming the file, never loaded wrong, never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from bad_helpers import raises_naming, tiny_net

import convc
from convc.errors import FileFormatError, OptionError, SizeLimitError


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    tiny_net().save(str(tmp_path / "m"))
    return tmp_path / "m"


def test_a_saved_pair_round_trips_and_records_the_weights_hash(saved: Path) -> None:
    doc = json.loads(saved.with_suffix(".json").read_text())
    assert len(doc["params"]["sha256"]) == 64
    g = convc.load(saved)
    for k, v in tiny_net().graph.params.items():
        np.testing.assert_array_equal(g.params[k], v)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["m.json", "m.npz"]


def test_a_pair_saved_before_hashes_still_loads(saved: Path) -> None:
    doc = json.loads(saved.with_suffix(".json").read_text())
    del doc["params"]
    saved.with_suffix(".json").write_text(json.dumps(doc))
    assert convc.load(saved).name == "tiny"


def test_weights_of_another_save_are_refused_naming_both_files(tmp_path: Path) -> None:
    tiny_net("a", seed=1).save(str(tmp_path / "a"))
    tiny_net("b", seed=2).save(str(tmp_path / "b"))
    os.replace(tmp_path / "b.npz", tmp_path / "a.npz")  # same shapes, other weights
    raises_naming(FileFormatError, ("a.npz", "a.json", "sha256"), lambda: convc.load(tmp_path / "a", retries=1))


@pytest.mark.parametrize("content, culprit", [
    ("[1, 2, 3]", "format 'list'"),
    ("null", "format 'NoneType'"),
    ('{"format": "convc-graph", "version": 99, "name": "x", "nodes": [], "outputs": []}', "version 99"),
    ('{"format": "convc-graph", "name": "x", "nodes": [], "outputs": []}', "version None"),
    ("{not json", "corrupt JSON"),
    ("", "corrupt JSON"),
])
def test_foreign_or_newer_graph_json_is_refused(saved: Path, content: str, culprit: str) -> None:
    saved.with_suffix(".json").write_text(content)
    raises_naming(FileFormatError, culprit, lambda: convc.load(saved))


def _edit_node(saved: Path, name: str, **changes: object) -> None:
    path = saved.with_suffix(".json")
    doc = json.loads(path.read_text())
    del doc["params"]  # edited by hand: no hash to keep
    node = next(n for n in doc["nodes"] if n["name"] == name)
    for k, v in changes.items():
        node["type"][k] = v
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("shape", [["a", 3], [None], [1.5, 2], "3x3", [-1, 3]])
def test_non_numeric_shapes_are_refused_naming_the_node(saved: Path, shape: object) -> None:
    _edit_node(saved, "x", shape=shape)
    raises_naming(FileFormatError, ("m.json", "node 'x'"), lambda: convc.load(saved))


def test_a_declared_36_tib_parameter_is_refused_before_allocating(saved: Path) -> None:
    path = saved.with_suffix(".json")
    doc = json.loads(path.read_text())
    del doc["params"]
    path.write_text(json.dumps(doc).replace('"shape": [4, 3, 3, 3]', '"shape": [1000000, 1000000, 3, 3]'))
    raises_naming(SizeLimitError, ("conv.weight", "36.0 TB", "memory limit"), lambda: convc.load(saved))


@pytest.mark.parametrize("damage", ["empty", "truncated", "bit-flipped", "npy", "text"])
def test_damaged_parameter_files_are_refused_naming_the_npz(saved: Path, damage: str) -> None:
    npz = saved.with_suffix(".npz")
    blob = npz.read_bytes()
    doc = json.loads(saved.with_suffix(".json").read_text())
    del doc["params"]  # without the hash, the archive itself must be checked
    saved.with_suffix(".json").write_text(json.dumps(doc))
    if damage == "empty":
        npz.write_bytes(b"")
    elif damage == "truncated":
        npz.write_bytes(blob[: len(blob) // 2])
    elif damage == "bit-flipped":
        flipped = bytearray(blob)
        for i in range(60, len(flipped), 97):
            flipped[i] ^= 0xFF
        npz.write_bytes(bytes(flipped))
    elif damage == "npy":
        np.save(str(npz), np.zeros(3))
        os.replace(str(npz) + ".npy", npz)
    else:
        npz.write_text("weights")
    raises_naming(FileFormatError, "m.npz", lambda: convc.load(saved))


def test_a_bit_flip_in_a_hashed_pair_is_caught_by_the_hash(saved: Path) -> None:
    npz = saved.with_suffix(".npz")
    flipped = bytearray(npz.read_bytes())
    flipped[-30] ^= 0x01
    npz.write_bytes(bytes(flipped))
    raises_naming(FileFormatError, ("m.npz", "sha256"), lambda: convc.load(saved, retries=0))


def test_complex_or_integer_weights_in_the_archive_are_refused(saved: Path) -> None:
    params = dict(np.load(saved.with_suffix(".npz")))
    params["conv.weight"] = params["conv.weight"].astype(np.complex64)
    np.savez(saved.with_suffix(".npz"), **params)
    doc = json.loads(saved.with_suffix(".json").read_text())
    del doc["params"]
    saved.with_suffix(".json").write_text(json.dumps(doc))
    raises_naming(FileFormatError, ("conv.weight", "complex64"), lambda: convc.load(saved))


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    raises_naming(FileFormatError, "nothing.json", lambda: convc.load(tmp_path / "nothing"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_saving_into_a_read_only_folder_names_the_path(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        raises_naming(OptionError, ("save", "m.npz"), lambda: tiny_net().save(str(ro / "m")))
    finally:
        ro.chmod(0o755)


def test_saving_where_a_file_blocks_the_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    raises_naming(OptionError, ("save", "file"), lambda: tiny_net().save(str(tmp_path / "file" / "m")))


_RACE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import convc

    def net(name, value):
        n = convc.Network(name, seed=0)
        x = n.input((1, 3, 8, 8))
        n.output(n.conv2d(x, 16, 3, name="conv"))
        n.graph.params = {k: np.full(v.shape, value, np.float32) for k, v in n.graph.params.items()}
        return n

    role, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    end = time.monotonic() + seconds
    if role == "writer":
        nets = [net("a", 1.0), net("b", 2.0)]
        i = 0
        while time.monotonic() < end:
            nets[i % 2].save(path)
            i += 1
        print(i)
    else:
        loads = torn = 0
        while time.monotonic() < end:
            g = convc.load(path)
            value = float(g.params["conv.weight"].flat[0])
            torn += value != {"a": 1.0, "b": 2.0}[g.name]
            loads += 1
        print(loads, torn)
""")


@pytest.mark.slow
def test_concurrent_saves_never_pair_one_graph_with_anothers_weights(tmp_path: Path) -> None:
    script = tmp_path / "race.py"
    script.write_text(_RACE)
    path = str(tmp_path / "shared")
    subprocess.run([sys.executable, str(script), "writer", path, "0.1"], check=True, capture_output=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), role, path, "3"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for role in ("writer", "writer", "reader")]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    saves = int(outs[0][0]) + int(outs[1][0])
    loads, torn = map(int, outs[2][0].split())
    assert saves > 10 and loads > 10
    assert torn == 0
