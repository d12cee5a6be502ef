"""The pass guard: a pass (plugin or built-in) cannot change the caller's network, cannot change the numbers
unnoticed by editing arrays in place, returning False or repointing the outputs, and cannot hang the
compile. Plugins here are registered in-process (register_pass), as a script would."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from convc.cli import main
from convc.compiler import optimize
from convc.dsl import Network
from convc.errors import PassError, PluginError
from convc.ir import Graph
from convc.pass_manager import PassContext, convc_pass, register_pass, unregister_pass


@pytest.fixture
def plugins() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        unregister_pass(n)


def add_plugin(names: list[str], name: str, fn: object) -> None:
    register_pass(convc_pass(name, opt_level=99, runs_after=("fuse_epilogue",))(fn))  # type: ignore[arg-type]
    names.append(name)


def cnn() -> Network:
    net = Network("guarded", seed=0)
    x = net.input((1, 3, 8, 8))
    y = net.relu(net.batch_norm(net.conv2d(x, 4, 3, padding=1, name="conv1"), name="bn1"))
    net.output(net.relu(net.linear(net.flatten(net.conv2d(y, 4, 3, name="conv2")), 3, name="fc"), name="out"))
    net.randomize_batch_norm(1)
    return net


def weight_of(g: Graph, layer: str) -> str:
    name = g.param_input(g.node(layer), "weight")
    assert name is not None
    return name


def test_a_pass_that_edits_a_parameter_in_place_is_named_and_the_caller_keeps_its_weights(
        plugins: list[str]) -> None:
    def scale_in_place(g: Graph, ctx: PassContext) -> bool:
        g.params[weight_of(g, "fc")] *= 2.0
        return True

    add_plugin(plugins, "scale_in_place", scale_in_place)
    net = cnn()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    for check in ("plugins", False):
        with pytest.raises(PluginError, match=r"pass 'scale_in_place' \(package '<script>'\) wrote into a "
                                              r"parameter array in place .*g.params\[name\] = new_array"):
            optimize(net, passes=["+scale_in_place"], check_numerics=check)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_a_pass_that_unlocks_an_array_to_edit_it_is_refused(plugins: list[str]) -> None:
    def unlock(g: Graph, ctx: PassContext) -> bool:
        w = g.params[weight_of(g, "conv2")]
        w.flags.writeable = True
        w[0] = 7.0
        return False

    add_plugin(plugins, "unlock", unlock)
    net = cnn()
    before = net.graph.params["conv2.weight"].copy()
    with pytest.raises(PassError, match="pass 'unlock' .* made parameter 'conv2.weight' writable"):
        optimize(net, passes=["+unlock"], check_numerics=False)
    np.testing.assert_array_equal(net.graph.params["conv2.weight"], before)


def test_a_pass_that_changes_the_numbers_but_returns_false_is_still_checked(plugins: list[str]) -> None:
    def quiet_scale(g: Graph, ctx: PassContext) -> bool:
        name = weight_of(g, "conv2")
        g.params[name] = g.params[name] * 1.5
        return False

    add_plugin(plugins, "quiet_scale", quiet_scale)
    with pytest.raises(PassError, match=r"pass 'quiet_scale' \(package '<script>'\) changed the result"):
        optimize(cnn(), passes=["+quiet_scale"])


def test_a_pass_that_changes_nothing_and_says_so_is_not_checked(plugins: list[str]) -> None:
    add_plugin(plugins, "idle", lambda g, ctx: False)
    _, _, manager = optimize(cnn(), passes=["+idle"])
    record = manager.records[-1]
    assert record.name == "idle" and not record.changed and record.error is None


@pytest.mark.parametrize("check", ["plugins", False])
def test_a_pass_that_repoints_the_outputs_is_caught_even_with_checks_off(plugins: list[str], check: object) -> None:
    def skip_last_relu(g: Graph, ctx: PassContext) -> bool:
        g.outputs = [g.node(g.outputs[0]).inputs[0]]  # the fc before the final relu: same type, other values
        return False

    add_plugin(plugins, "skip_last_relu", skip_last_relu)
    with pytest.raises(PassError, match="pass 'skip_last_relu' .* changed the result"):
        # -O1: no epilogue fusion, so the final relu is still a node of its own.
        optimize(cnn(), opt_level=1, passes=["+skip_last_relu"], check_numerics=check)  # type: ignore[arg-type]


def test_a_pass_that_changes_the_number_of_outputs_is_refused(plugins: list[str]) -> None:
    def extra_output(g: Graph, ctx: PassContext) -> bool:
        g.outputs = g.outputs + ["conv1"]
        return True

    add_plugin(plugins, "extra_output", extra_output)
    with pytest.raises(PassError, match=r"pass 'extra_output' .* changed the graph's outputs from \[out: "):
        optimize(cnn(), opt_level=1, passes=["+extra_output"], check_numerics=False)


def test_the_compiled_graph_owns_writable_copies_of_the_parameters() -> None:
    net = cnn()
    g, _, _ = optimize(net, opt_level=2)
    for name, array in g.params.items():
        assert array.flags.writeable, name
        for original in net.graph.params.values():
            assert not np.shares_memory(array, original), name


def test_a_pass_that_never_returns_stops_the_compile_after_the_time_limit(plugins: list[str]) -> None:
    started: list[threading.Thread] = []

    def spin(g: Graph, ctx: PassContext) -> bool:
        started.append(threading.current_thread())
        while True:
            pass

    add_plugin(plugins, "spin", spin)
    t0 = time.perf_counter()
    with pytest.raises(PassError, match=r"pass 'spin' \(package '<script>'\) did not finish within 0.3 s and "
                                        r"was abandoned; raise the limit .*--disable spin"):
        optimize(cnn(), passes=["+spin"], pass_timeout=0.3)
    assert time.perf_counter() - t0 < 30
    started[0].join(10)  # a pure-Python loop is stopped, not left spinning
    assert not started[0].is_alive()


def test_a_pass_blocked_in_c_code_is_abandoned_after_the_time_limit(plugins: list[str]) -> None:
    release = threading.Event()
    add_plugin(plugins, "blocked", lambda g, ctx: release.wait(600))
    try:
        with pytest.raises(PassError, match="pass 'blocked' .* did not finish within 0.2 s"):
            optimize(cnn(), passes=["+blocked"], pass_timeout=0.2)
    finally:
        release.set()


def test_the_time_limit_through_the_cli(plugins: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()
    add_plugin(plugins, "stuck", lambda g, ctx: release.wait(600))
    try:
        code = main(["compile", "lenet5", "--passes", "+stuck", "--pass-timeout", "0.2"])
    finally:
        release.set()
    err = capsys.readouterr().err
    assert code != 0 and "pass 'stuck' (package '<script>') did not finish within 0.2 s" in err


def test_exceptions_and_results_cross_the_worker_thread(plugins: list[str]) -> None:
    def explode(g: Graph, ctx: PassContext) -> bool:
        raise KeyError("boom")

    add_plugin(plugins, "explode", explode)
    with pytest.raises(PluginError, match="pass 'explode' from package '<script>' raised KeyError: 'boom'"):
        optimize(cnn(), passes=["+explode"], pass_timeout=5)
    g, _, manager = optimize(cnn(), pass_timeout=5)
    assert [r.changed for r in manager.records][:1] and not g.nodes("batch_norm")


def test_a_pass_under_a_time_limit_sees_the_caller_s_context_variables(plugins: list[str]) -> None:
    import contextvars

    flag: contextvars.ContextVar[str] = contextvars.ContextVar("flag", default="unset")
    seen: list[str] = []
    add_plugin(plugins, "look", lambda g, ctx: seen.append(flag.get()) or False)
    flag.set("caller's value")
    optimize(cnn(), passes=["+look"], pass_timeout=30)
    assert seen == ["caller's value"]
