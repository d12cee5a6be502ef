"""Plugins that misbehave or collide: a PluginError naming the plugin and its package, never a traceback,
never a silent choice of one of two plugins with one name."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from bad_helpers import raises_naming, tiny_net

import convc
from convc import registry
from convc.backend import Backend, Capabilities
from convc.errors import PluginError, PluginWarning
from convc.ir import Graph
from convc.pass_manager import PassContext, convc_pass, register_pass, unregister_pass


def _raising_build(backend: Any, graph: Graph, *, dtype: str, **options: Any) -> Any:
    raise ZeroDivisionError("the plugin's own bug")


RAISING_BACKEND = Backend("raising", Capabilities(ops=frozenset({"conv2d", "relu"})), build=_raising_build)


@convc_pass("fold_bn", opt_level=99)
def impostor_fold_bn(g: Graph, ctx: PassContext) -> bool:
    """A third-party pass that reuses a built-in pass's name."""
    return False


@dataclass
class FakeDist:
    metadata: dict[str, str]


@dataclass
class FakeEntryPoint:
    """What importlib.metadata yields, for a package that is not installed."""

    name: str
    value: str
    group: str
    dist: FakeDist
    target: Any

    def load(self) -> Any:
        return self.target


@pytest.fixture
def extra_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeEntryPoint]]:
    extra: list[FakeEntryPoint] = []
    real = registry.entry_points

    def entry_points(group: str) -> list[Any]:
        return list(real(group=group)) + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    yield extra


def test_a_backend_plugin_whose_compile_raises_is_named_with_its_package(
        extra_entry_points: list[FakeEntryPoint]) -> None:
    extra_entry_points.append(FakeEntryPoint("raising", "acme_backend:backend", registry.BACKENDS_GROUP,
                                             FakeDist({"Name": "acme-backend"}), RAISING_BACKEND))
    raises_naming(PluginError, ("backend 'raising'", "package 'acme-backend'", "ZeroDivisionError",
                                "graph 'tiny'"),
                  lambda: convc.compile(tiny_net(), backend="raising", opt_level=0))


def test_a_script_backend_whose_compile_raises_is_named() -> None:
    registry.register_backend(RAISING_BACKEND, "raising_script")
    try:
        raises_naming(PluginError, ("backend 'raising_script'", "<script>", "ZeroDivisionError"),
                      lambda: convc.compile(tiny_net(), backend="raising_script", opt_level=0))
    finally:
        registry.unregister_backend("raising_script")


def test_two_packages_registering_one_backend_name_are_both_named(
        extra_entry_points: list[FakeEntryPoint]) -> None:
    extra_entry_points.append(FakeEntryPoint("numpy", "acme_numpy:backend", registry.BACKENDS_GROUP,
                                             FakeDist({"Name": "acme-numpy"}), RAISING_BACKEND))
    raises_naming(PluginError, ("'numpy'", "package 'convc'", "package 'acme-numpy'"),
                  lambda: convc.compile(tiny_net(), backend="numpy"))


def test_the_clash_is_forgotten_once_the_package_is_gone() -> None:
    assert convc.compile(tiny_net(), backend="numpy").run(np.ones((1, 3, 8, 8)))[0].shape == (1, 4, 8, 8)


def test_a_pass_plugin_named_like_a_built_in_pass_is_left_out_with_a_warning(
        extra_entry_points: list[FakeEntryPoint]) -> None:
    extra_entry_points.append(FakeEntryPoint("my_fold", "acme_passes:fold", registry.PASSES_GROUP,
                                             FakeDist({"Name": "acme-passes"}), impostor_fold_bn))
    with pytest.warns(PluginWarning) as caught:
        model = convc.compile(tiny_net())
    message = " ".join(str(w.message) for w in caught)
    assert "'my_fold'" in message and "acme-passes" in message and "package 'convc'" in message
    assert [r.origin for r in model.pass_records if r.name == "fold_bn"] == ["convc"]  # the built-in ran


def test_two_packages_registering_one_pass_entry_point_are_named_in_a_warning(
        extra_entry_points: list[FakeEntryPoint]) -> None:
    extra_entry_points.append(FakeEntryPoint("fold_bn", "acme_passes:fold", registry.PASSES_GROUP,
                                             FakeDist({"Name": "acme-passes"}), impostor_fold_bn))
    with pytest.warns(PluginWarning, match="'fold_bn' in convc.passes is registered by both package 'convc'"):
        convc.compile(tiny_net())


def test_a_script_pass_named_like_a_built_in_pass_is_refused() -> None:
    register_pass(impostor_fold_bn)
    try:
        raises_naming(PluginError, ("pass 'fold_bn'", "<script>", "package 'convc'"),
                      lambda: convc.compile(tiny_net()))
    finally:
        unregister_pass("fold_bn")
    assert convc.compile(tiny_net()).run(np.ones((1, 3, 8, 8)))[0].shape == (1, 4, 8, 8)  # all clean again
