"""Plugin discovery: built-ins come through the same entry points a third-party package uses."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import convc
from convc import registry
from convc.errors import OptionError, PluginError


def test_builtin_backends_are_entry_points_of_the_convc_distribution() -> None:
    found = registry.discover(registry.BACKENDS_GROUP)
    assert {"numpy", "torch", "torch-compile", "triton"} <= set(found)
    assert found["numpy"].package == "convc"
    assert found["numpy"].value == "convc.backends.numpy_ref:backend"


def test_core_does_not_import_backends_or_passes() -> None:
    import subprocess
    import sys

    code = ("import sys, convc; convc.Network(); "
            "bad = [m for m in sys.modules if m.startswith(('convc.backends', 'convc.passes'))]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(OptionError, match="unknown backend 'cuda9'; known backends: .*numpy.*torch"):
        registry.get_backend("cuda9")


def test_a_plugin_that_fails_to_import_names_itself_and_its_package() -> None:
    ep = EntryPoint("broken", "convc_no_such_module:backend", registry.BACKENDS_GROUP)
    plugin = registry.Plugin("broken", ep.value, "broken-pkg", ep)
    with pytest.raises(PluginError, match="plugin 'broken' .* from package 'broken-pkg' failed to load: "
                                          "ModuleNotFoundError"):
        plugin.load()


def test_compile_refuses_what_is_not_a_network() -> None:
    with pytest.raises(OptionError, match="compile\\(\\) takes a convc Network or Graph, got int"):
        convc.compile(3)
