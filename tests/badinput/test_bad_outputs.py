"""Every file a command writes, at a path that cannot be written: the real `convc` console script exits 2
with one `convc: error:` line naming the flag and the path, before it compiles or measures anything, and
never with a traceback. Two kinds of bad path: a folder without write permission (for root, who writes
anywhere else, /sys) and a path whose parent is a file."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bad_cli import assert_refused, convc

# (argv with OUT for the path, what a run that got past the check would print on stdout)
WRITERS = [
    (["run", "lenet5", "--output", "OUT/y.npy"], "output %"),
    (["run", "lenet5", "--output", "OUT/outs"], "output %"),
    (["compile", "lenet5", "-o", "OUT/m.convc"], "compiled"),
    (["compile", "lenet5", "--emit", "OUT/kernels"], "compiled"),
    (["compile", "lenet5", "--dump-ir", "OUT/ir"], "compiled"),
    (["run", "lenet5", "--plan", "OUT/plan.json"], "output %"),
    (["export", "lenet5", "-o", "OUT/m.onnx"], "wrote"),
    (["bench", "lenet5", "--backends", "numpy", "--repeat", "1", "--json", "OUT/b.json"], "images/s"),
    (["bench", "lenet5", "--backends", "numpy", "--repeat", "1", "--jsonl", "OUT/b.jsonl"], "images/s"),
    (["bench", "lenet5", "--backends", "numpy", "--repeat", "1", "--plot", "OUT/r.png"], "images/s"),
]


def cannot_write_in(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return False
    except OSError:
        return True


@pytest.fixture(scope="module")
def read_only_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() == 0:  # permissions do not stop root; a pseudo file system does
        if not cannot_write_in(Path("/sys")):
            pytest.skip("running as root and /sys is writable: no folder here refuses a write")
        yield Path("/sys")
        return
    folder = tmp_path_factory.mktemp("ro")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize("argv, progressed", WRITERS, ids=[" ".join(w[0][:1] + w[0][2:]) for w in WRITERS])
def test_an_unwritable_folder_is_named_before_any_work(read_only_folder: Path, tmp_path: Path,
                                                         argv: list[str], progressed: str) -> None:
    args = [a.replace("OUT", str(read_only_folder)) for a in argv]
    path = next(a for a in args if a.startswith(str(read_only_folder)))
    result = convc(*args, cwd=tmp_path)
    assert_refused(result, 2, path, "cannot write in the folder")
    assert progressed not in result.stdout
    assert not list(tmp_path.iterdir())  # nothing written anywhere else either


@pytest.mark.slow
@pytest.mark.parametrize("argv, progressed", WRITERS, ids=[" ".join(w[0][:1] + w[0][2:]) for w in WRITERS])
def test_a_file_where_a_folder_belongs_is_named(tmp_path: Path, argv: list[str], progressed: str) -> None:
    (tmp_path / "blocker").write_text("a file where a folder belongs")
    args = [a.replace("OUT", "blocker") for a in argv]
    flag = args[args.index(next(a for a in args if a.startswith("blocker"))) - 1]
    result = convc(*args, cwd=tmp_path)
    assert_refused(result, 2, flag, "blocker", "is a file, not a folder")
    assert progressed not in result.stdout
    assert (tmp_path / "blocker").read_text() == "a file where a folder belongs"
