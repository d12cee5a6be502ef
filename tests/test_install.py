"""A regular (non-editable) install works: build a wheel from the repo, install it into a fresh virtual
environment and run the `convc` console script of that environment.

The fresh environment gets convc from the wheel only; its dependencies (torch, numpy, ...) are borrowed
from the environment running the tests through a .pth file, so the test needs no network and no second
copy of torch. That borrowed path holds no `convc` module (the test environment's convc is an editable
install, whose import hook is not processed from a plain .pth path), which the test checks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import convc

REPO = Path(__file__).resolve().parents[1]
# Source folders and the package name each installs as (setup.py's PACKAGE_DIRS).
SOURCE_PACKAGES = {"convc": "convc", "passes": "convc.passes", "backends": "convc.backends", "models": "convc.models"}


def _expected_packages() -> set[str]:
    """Every folder with an __init__.py under the source folders, named as installed."""
    names = set()
    for folder, package in SOURCE_PACKAGES.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            names.add(".".join((package, *rel)))
    return names


def _copy_sources(dest: Path) -> Path:
    """The repo's sources without build outputs, so a stale build/ folder cannot hide a missing package."""
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                  ".hypothesis", ".convc-cache", "tests", "bench", "out")
    shutil.copytree(REPO, dest, ignore=skip)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist"), str(src)], check=True, timeout=120)
    (found,) = (tmp / "dist").glob("convc-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_every_package_and_no_top_level_models(wheel: Path) -> None:
    files = zipfile.ZipFile(wheel).namelist()
    packaged = {f.rsplit("/", 1)[0].replace("/", ".") for f in files if f.endswith("/__init__.py")}
    expected = _expected_packages()
    assert {"convc.ops", "convc.commands", "convc.backends.triton", "convc.models"} <= expected
    assert packaged == expected
    assert all(f.startswith(("convc/", "convc-")) for f in files), "only the convc package is installed"
    assert wheel.name.startswith(f"convc-{convc.__version__}-")


@pytest.mark.slow
def test_installed_wheel_runs_from_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    new_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              check=True, capture_output=True, text=True).stdout.strip()
    # Dependencies from this environment, after the fresh one's own site-packages on sys.path.
    Path(new_site, "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=120)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
    env["CONVC_CACHE_DIR"] = str(tmp_path / "cache")

    def convc_script(*args: str) -> str:
        done = subprocess.run([str(env_dir / "bin" / "convc"), *args], check=False, cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = subprocess.run([str(python), "-c", "import convc.ops, convc.commands; print(convc.__file__)"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(new_site), "convc must come from the installed wheel"
    assert convc_script("--version").startswith(f"convc {convc.__version__} (")
    passes = convc_script("passes")
    assert all(name in passes for name in ("fold_bn", "fuse_epilogue", "choose_conv_algo"))
    ran = convc_script("run", "lenet5", "--seed", "1")
    assert "shape (1, 10)" in ran


def test_declared_torch_range_keeps_a_users_newer_torch() -> None:
    import tomllib
    from packaging.requirements import Requirement

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_req,) = [Requirement(d) for d in deps if Requirement(d).name == "torch"]
    for supported in ("2.11.0", "2.13.0", "2.14.1", "2.15.0"):
        assert torch_req.specifier.contains(supported), f"{torch_req} would replace torch {supported}"
    assert not torch_req.specifier.contains("2.2.0")
