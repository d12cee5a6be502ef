"""Plugins cannot take convc down: a package whose pass or backend fails to import is reported once (its
name, package, error and how to leave it out) and left out; every other command still works.

The plugin packages here are real distributions as importlib.metadata sees them (a .dist-info folder
with entry_points.txt on the path), so discovery runs exactly as for an installed package.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import convc
from convc import registry
from convc.errors import PassError, PluginError, PluginWarning
from convc.pass_manager import available_passes, resolve_pipeline

CONVC = Path(sys.executable).with_name("convc")
BROKEN_PACKAGE = "convc-broken-example"
BREAKER_PACKAGE = "convc-graph-breaker"


def make_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two plugin packages: one that fails to import (a pass and a backend), one whose pass breaks
    the graph. Visible to this process and, through PYTHONPATH, to the console script."""
    site = tmp_path / "site"
    make_distribution(site, BROKEN_PACKAGE,
                      "[convc.passes]\nbroken_pass = convc_broken_example:broken_pass\n\n"
                      "[convc.backends]\nbroken_backend = convc_broken_example:backend\n",
                      {"convc_broken_example": "raise ImportError('needs libfoo, which is not installed')\n"})
    make_distribution(site, BREAKER_PACKAGE,
                      "[convc.passes]\ngraph_breaker = convc_graph_breaker:graph_breaker\n",
                      {"convc_graph_breaker": GRAPH_BREAKER})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setattr(registry, "_BROKEN", {})
    monkeypatch.setattr(registry, "_WARNED", set())
    importlib.invalidate_caches()
    registry._load_backend.cache_clear()
    yield site
    registry._load_backend.cache_clear()
    importlib.invalidate_caches()


GRAPH_BREAKER = '''
from convc.pass_manager import convc_pass


@convc_pass("graph_breaker", opt_level=99)
def graph_breaker(g, ctx):
    """Drops the first conv's `groups` attribute: a node its schema refuses."""
    conv = next(iter(g.nodes("conv2d")))
    g.replace_node(conv.replace(attrs={k: v for k, v in conv.attrs.items() if k != "groups"}))
    return True
'''


def convc_script(*args: str) -> subprocess.CompletedProcess[str]:
    if not CONVC.exists():
        pytest.skip("no `convc` script next to this Python")
    return subprocess.run([str(CONVC), *args], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "COLUMNS": "200"})


def test_a_broken_pass_plugin_is_left_out_and_reported_once(plugin_site: Path) -> None:
    passes = available_passes()
    assert "broken_pass" not in passes and "fold_bn" in passes
    broken = registry.broken(registry.PASSES_GROUP)["broken_pass"]
    assert broken.package == BROKEN_PACKAGE and "ImportError: needs libfoo" in broken.error
    with pytest.warns(PluginWarning) as caught:
        resolve_pipeline(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        resolve_pipeline(3)  # once per process, not per pipeline
    (warning,) = [w for w in caught if "broken_pass" in str(w.message)]
    text = str(warning.message)
    assert all(part in text for part in ("'broken_pass'", f"package '{BROKEN_PACKAGE}'", "needs libfoo",
                                         "--disable broken_pass", f"pip uninstall {BROKEN_PACKAGE}"))


def test_disabling_a_broken_plugin_silences_it(plugin_site: Path, recwarn: pytest.WarningsRecorder) -> None:
    pipeline = resolve_pipeline(2, disable=["broken_pass"])
    assert "fold_bn" in [p.name for p in pipeline]
    assert not [w for w in recwarn if issubclass(w.category, PluginWarning)]


def test_asking_for_a_broken_pass_is_an_error_that_names_it(plugin_site: Path) -> None:
    with pytest.raises(PluginError, match=f"'broken_pass'.*'{BROKEN_PACKAGE}'.*needs libfoo"):
        resolve_pipeline(2, passes=["+broken_pass"])


def test_a_pass_that_breaks_the_graph_is_named_with_its_package(plugin_site: Path) -> None:
    net = convc.models.get("lenet5")
    with pytest.raises(PassError, match=f"pass 'graph_breaker' \\(package '{BREAKER_PACKAGE}'\\) left a "
                                        f"broken graph"):
        convc.compile(net, passes=["+graph_breaker"], disable=["broken_pass"])


def test_a_broken_backend_plugin_names_itself(plugin_site: Path) -> None:
    with pytest.raises(PluginError, match=f"backend plugin 'broken_backend'.*'{BROKEN_PACKAGE}'.*needs libfoo"
                                          f".*choose another --backend"):
        registry.get_backend("broken_backend")
    assert registry.get_backend("numpy").name == "numpy"


def test_console_script_keeps_working_with_broken_plugins(plugin_site: Path) -> None:
    listed = convc_script("passes")
    assert listed.returncode == 0, listed.stderr
    assert "broken_pass" in listed.stdout and "left out (broken)" in listed.stdout
    assert listed.stderr.count("convc: warning: pass plugin 'broken_pass'") == 1
    assert "Traceback" not in listed.stderr

    ran = convc_script("run", "lenet5")
    assert ran.returncode == 0 and "shape (1, 10)" in ran.stdout
    assert ran.stderr.count("convc: warning:") == 1 and "needs libfoo" in ran.stderr

    quiet = convc_script("run", "lenet5", "--disable", "broken_pass")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr

    backends = convc_script("backends")
    assert backends.returncode == 0 and "broken_backend" in backends.stdout and "broken" in backends.stdout
    assert backends.stderr.count("convc: warning: backend plugin 'broken_backend'") == 1

    asked = convc_script("run", "lenet5", "--backend", "broken_backend")
    assert asked.returncode == 1 and "convc: error: backend plugin 'broken_backend'" in asked.stderr
