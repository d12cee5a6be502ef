"""The example third-party backend (examples/convc-backend-example), installed into the venv the way a user
would, and backends registered from a script with `register_backend`."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import convc
import convc.models
from convc.errors import OptionError, PluginError
from convc.registry import backend_names, discover, get_backend, register_backend, unregister_backend

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "convc-backend-example"
PACKAGE = "convc-backend-example"


@pytest.fixture(scope="module")
def installed(install_example: Callable, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Installed with pip the way a user would (a regular install), into a folder of this test's own."""
    with install_example(EXAMPLE, tmp_path_factory.mktemp("backend")):
        yield
    sys.modules.pop("convc_backend_example", None)


def lenet() -> convc.Network:
    return convc.models.get("lenet5")


def computing_nodes(model: convc.backend.CompiledModel) -> list[str]:
    return [n.name for n in model.graph.nodes() if n.op not in ("input", "param")]


def test_the_entry_point_names_the_package_and_backend_names_lists_it(installed: None) -> None:
    assert discover("convc.backends")["timed-numpy"].package == PACKAGE
    assert "timed-numpy" in backend_names()


def test_outputs_equal_the_wrapped_backend_s_and_every_node_is_timed(installed: None) -> None:
    net = lenet()
    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape).astype(np.float32)
    timed = get_backend("timed-numpy")
    timed.timings.clear()
    model = convc.compile(net, backend="timed-numpy")
    [y] = model.run(x)
    [want] = convc.compile(net, backend="numpy").run(x)
    np.testing.assert_array_equal(y, want)
    assert [t.node for t in timed.timings] == computing_nodes(model)
    assert [t.op for t in timed.timings] == [model.graph.node(n).op for n in computing_nodes(model)]
    assert all(t.seconds >= 0 for t in timed.timings)


def test_convc_run_takes_it_as_any_backend(installed: None) -> None:
    exe = Path(sys.executable).with_name("convc")
    if not exe.exists():
        pytest.skip("no `convc` script next to this Python")
    out = subprocess.run([str(exe), "run", "lenet5", "--backend", "timed-numpy"], check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert "compiled for timed-numpy" in out and "output %fc3: shape (1, 10)" in out


def test_it_wraps_the_torch_backend_too(installed: None) -> None:
    from convc_backend_example import timed

    net = lenet()
    x = np.random.default_rng(1).standard_normal(net.graph.inputs[0].type.shape).astype(np.float32)
    backend = register_backend(timed(get_backend("torch")))
    try:
        model = convc.compile(net, backend="timed-torch", dtype="float64", device="cpu")
        [y] = model.run(x)
        [want] = convc.compile(net, backend="torch", dtype="float64", device="cpu").run(x)
        np.testing.assert_array_equal(y, want)
        assert [t.node for t in backend.timings] == computing_nodes(model)
    finally:
        unregister_backend("timed-torch")


def test_register_backend_makes_a_script_backend_known_until_unregistered() -> None:
    local = dataclasses.replace(get_backend("numpy"), name="numpy-local")
    register_backend(local)
    try:
        assert get_backend("numpy-local") is local and "numpy-local" in backend_names()
        net = lenet()
        x = np.ones(net.graph.inputs[0].type.shape, np.float32)
        model = convc.compile(net, backend="numpy-local")
        assert model.backend == "numpy-local"
        np.testing.assert_array_equal(model.run(x)[0], convc.compile(net, backend="numpy").run(x)[0])
    finally:
        unregister_backend("numpy-local")
    assert "numpy-local" not in backend_names()
    with pytest.raises(OptionError, match="unknown backend 'numpy-local'"):
        get_backend("numpy-local")


def test_register_backend_refuses_what_is_not_a_backend() -> None:
    with pytest.raises(PluginError, match="backend plugin 'oops' .* is not a Backend"):
        register_backend(object(), name="oops")
