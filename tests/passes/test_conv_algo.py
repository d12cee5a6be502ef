"""choose_conv_algo: candidates per layer, the cost model's choice, user pins, and target restrictions."""
from __future__ import annotations

import dataclasses
import math

import pytest

import convc
from convc.backend import Backend, Capabilities
from convc.compiler import optimize
from convc.dsl import Network
from convc.errors import OptionError
from convc.numerics import budget
from convc.pass_manager import PassContext
from convc.passes.conv_algo import candidates, choose_conv_algo, pick
from convc.passes.conv_cost import CPU, H100, PROFILES, ConvShape, estimate
from convc.registry import get_backend
from pass_check import check_rewrite, op_counts, with_float64_params

ALL = ("direct", "im2col", "winograd_2x2", "winograd_4x4")
PLAIN = ("direct", "im2col")


def one_conv(ndim: int = 2, kernel: int = 3, **kw: object) -> Network:
    net = Network("one")
    x = net.input((2, 4) + (8,) * ndim)
    net.output(net.conv(x, 4, kernel, name="conv", ndim=ndim, **kw))  # type: ignore[arg-type]
    return net


@pytest.mark.parametrize("net,expected", [
    (one_conv(), ALL),
    (one_conv(padding=1), ALL),
    (one_conv(stride=2), PLAIN),
    (one_conv(dilation=2), PLAIN),
    (one_conv(groups=2), PLAIN),
    (one_conv(kernel=5), PLAIN),
    (one_conv(kernel=1), PLAIN),
    (one_conv(ndim=1), PLAIN),
    (one_conv(ndim=3), PLAIN),
], ids=["3x3", "3x3-pad", "stride2", "dilation2", "groups2", "5x5", "1x1", "conv1d", "conv3d"])
def test_winograd_is_a_candidate_only_for_2d_3x3_stride1_dilation1_ungrouped(net: Network,
                                                                              expected: tuple) -> None:
    assert candidates(net.graph.node("conv"), ALL) == expected


def small_cnn() -> Network:
    net = Network("cnn")
    x = net.input((2, 3, 12, 12))
    y = net.relu(net.conv2d(x, 8, 3, padding=1, name="stem"))
    y = net.conv2d(y, 8, 3, stride=2, padding=1, name="down")
    y = net.relu(net.conv2d(y, 8, 1, name="pointwise"))
    net.output(net.conv1d(net.flatten(y, start_dim=2), 4, 3, name="temporal"))
    return net


def test_o2_picks_the_modelled_fastest_applicable_algorithm_for_every_conv() -> None:
    g, ctx = check_rewrite(small_cnn().graph, None, expect={"conv2d": 3, "conv1d": 1, "relu": 0})
    plan = ctx.results["plan"]
    assert plan.mode == "model" and plan.backend == "numpy" and plan.device == "cpu"
    assert [lp.layer for lp in plan.layers] == ["stem", "down", "pointwise", "temporal"]
    for lp in plan.layers:
        node = g.node(lp.layer)
        assert set(lp.times) == set(candidates(node, ALL))
        assert lp.algo == node.attrs["algo"] == min(lp.times, key=lp.times.get)
        assert lp.source == "modelled" and lp.budget == budget("float64", lp.algo)
        assert lp.reason.startswith("modelled: " + lp.algo)


def numpy_subset(name: str, algos: tuple[str, ...]) -> Backend:
    """The NumPy backend's kernels, advertising only `algos`."""
    base = get_backend("numpy")
    caps = dataclasses.replace(base.capabilities, conv_algos=algos)
    return dataclasses.replace(base, name=name, capabilities=caps)


def test_only_the_target_s_algorithms_are_chosen() -> None:
    g = with_float64_params(small_cnn().graph)
    ctx = PassContext(backend=numpy_subset("winograd-only", ("winograd_4x4", "im2col")), dtype="float64")
    assert choose_conv_algo(g, ctx)
    assert all(n.attrs["algo"] in ("winograd_4x4", "im2col") for n in g.nodes(("conv1d", "conv2d")))
    assert g.node("down").attrs["algo"] == "im2col"  # stride 2: winograd does not apply


def test_a_layer_with_no_applicable_algorithm_is_left_to_the_backend() -> None:
    g = one_conv(stride=2).graph
    ctx = PassContext(backend=numpy_subset("winograd-only", ("winograd_2x2",)))
    assert choose_conv_algo(g, ctx) is False
    assert g.node("conv").attrs["algo"] is None and ctx.results["plan"].layers == ()
    assert "no algorithm for 'conv'" in ctx.log[0]


def test_torch_lists_only_cudnn_which_is_recorded_but_left_to_torch() -> None:
    g, ctx, _ = optimize(small_cnn(), backend="torch", check_numerics=False)
    assert all(n.attrs["algo"] is None for n in g.nodes(("conv1d", "conv2d")))
    assert {(lp.algo, lp.source) for lp in ctx.results["plan"].layers} == {("cudnn", "only choice")}


def test_pins_override_the_model_and_are_reported_as_pinned() -> None:
    net = small_cnn()
    g, ctx = check_rewrite(net.graph, None, expect={"conv2d": 3},
                           algo={"stem": "winograd_4x4", "down": "direct"})
    assert g.node("stem").attrs["algo"] == "winograd_4x4" and g.node("down").attrs["algo"] == "direct"
    assert ctx.results["plan"].layer("stem").source == "pinned"
    model = convc.compile(net, algo="stem=direct,pointwise=direct", check_numerics=False)
    assert model.graph.node("stem").attrs["algo"] == "direct" and model.plan.algo_of("pointwise") == "direct"


def test_pins_are_the_pass_s_own_options_and_compile_s_algo_is_sugar_for_them() -> None:
    net = small_cnn()
    pins = {"stem": "direct", "pointwise": "direct"}
    g, ctx, _ = optimize(net, pass_options={"choose_conv_algo": {"algo": pins}}, check_numerics=False)
    assert ctx.options == {"choose_conv_algo": {"algo": pins}}
    assert {n: g.node(n).attrs["algo"] for n in pins} == pins
    assert {n: ctx.results["plan"].layer(n).source for n in pins} == {"stem": "pinned", "pointwise": "pinned"}
    _, sugar, _ = optimize(net, algo="stem=direct,pointwise=direct", plan=None, check_numerics=False)
    assert sugar.options == {"choose_conv_algo": {"algo": "stem=direct,pointwise=direct"}}
    assert sugar.results["plan"] == ctx.results["plan"]
    model = convc.compile(net, pass_options={"choose_conv_algo": {"algo": pins}}, check_numerics=False)
    assert model.results["plan"] is model.plan and model.plan.algo_of("stem") == "direct"


def test_an_unknown_pass_option_names_the_pass_and_what_it_accepts() -> None:
    with pytest.raises(OptionError, match=r"pass 'choose_conv_algo' has no option\(s\) algos; it accepts "
                                          r"algo, plan"):
        optimize(small_cnn(), pass_options={"choose_conv_algo": {"algos": {"stem": "direct"}}})


def test_pinning_an_unknown_layer_names_it_and_the_conv_layers() -> None:
    with pytest.raises(OptionError, match=r"--algo stme=direct: no conv layer named 'stme'; did you mean "
                                          r"stem\?.*conv layers: stem, down, pointwise, temporal"):
        optimize(small_cnn(), algo={"stme": "direct"})


@pytest.mark.parametrize("layer,algo", [("down", "winograd_2x2"), ("temporal", "winograd_4x4"),
                                        ("stem", "fft")])
def test_pinning_an_algorithm_that_does_not_apply_lists_the_valid_choices(layer: str, algo: str) -> None:
    valid = "direct, im2col" + (", winograd_2x2, winograd_4x4" if layer == "stem" else "")
    with pytest.raises(OptionError, match=rf"'{algo}' does not apply to conv layer '{layer}'.*valid "
                                          rf"choices: {valid}$"):
        optimize(small_cnn(), algo={layer: algo})


def test_an_algorithm_already_in_the_graph_is_kept() -> None:
    net = one_conv(padding=1)
    net.graph.node("conv").attrs["algo"] = "winograd_2x2"
    g, ctx = check_rewrite(net.graph, None, expect={"conv2d": 1})
    assert g.node("conv").attrs["algo"] == "winograd_2x2"
    assert ctx.results["plan"].layer("conv").source == "set in the graph"


def test_pick_skips_candidates_outside_their_numerical_budget() -> None:
    times = {"direct": 3.0, "im2col": 2.0, "winograd_4x4": 1.0}
    errors = {"direct": 1e-7, "im2col": 2e-7, "winograd_4x4": 5e-4}  # float32 budgets 1e-5 / 1e-4
    assert pick(times, errors, ("direct", "im2col", "winograd_4x4"), "float32") == "im2col"
    assert pick(times, {a: 1.0 for a in times}, ("direct", "im2col", "winograd_4x4"), "float32") == "direct"
    assert pick({"a": 1.0, "b": 1.0}, {}, ("b", "a"), "float32") == "b"  # a tie keeps the target's order


# ------------------------------------------------------------------ the cost model
def conv_shape(batch: int, channels: int, size: int, kernel: int = 3, stride: int = 1) -> ConvShape:
    net = Network("s")
    x = net.input((batch, channels, size, size))
    net.output(net.conv2d(x, channels, kernel, stride=stride, padding=kernel // 2, name="c"))
    return ConvShape.of(net.graph.node("c"), net.graph)


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_no_estimate_beats_the_peak_rate_and_work_grows_with_the_batch(profile: object, dtype: str) -> None:
    for algo in ("direct", "im2col", "implicit_gemm"):
        small, big = conv_shape(1, 64, 28), conv_shape(8, 64, 28)
        assert estimate(small, algo, profile, dtype) >= small.macs / profile.gemm_macs_per_s[dtype]
        assert estimate(big, algo, profile, dtype) > estimate(small, algo, profile, dtype)


def test_winograd_saves_the_published_multiplies_when_only_the_gemm_counts() -> None:
    """Lavin & Gray: F(2x2,3x3) needs 2.25x and F(4x4,3x3) 4x fewer multiplies than direct."""
    free = dataclasses.replace(H100, bytes_per_s=math.inf, call_overhead_s=0.0,
                               direct_macs_per_s=H100.gemm_macs_per_s,
                               transform_macs_per_s={"float32": math.inf})
    shape = conv_shape(1, 64, 24)  # 24 is a multiple of both tile sizes: no padded tiles
    direct = estimate(shape, "direct", free, "float32")
    assert direct / estimate(shape, "winograd_2x2", free, "float32") == pytest.approx(2.25)
    assert direct / estimate(shape, "winograd_4x4", free, "float32") == pytest.approx(4.0)


def test_the_cpu_model_prefers_im2col_for_a_strided_7x7_stem() -> None:
    # Measured with the NumPy backend (1x3x224x224, 64 filters): im2col ~40 ms, direct ~700 ms.
    stem = conv_shape(1, 3, 224, kernel=7, stride=2)
    assert estimate(stem, "im2col", CPU, "float32") < estimate(stem, "direct", CPU, "float32")


def test_o1_does_not_choose_algorithms() -> None:
    g, ctx, _ = optimize(small_cnn(), opt_level=1, check_numerics=False)
    assert "plan" not in ctx.results and all(n.attrs["algo"] is None for n in g.nodes("conv2d"))
    assert op_counts(g)["relu"] == 2  # fusion is -O2 too


@pytest.mark.parametrize("opt_level", [0, 1])
@pytest.mark.parametrize("how", ["algo=", "pass_options"])
@pytest.mark.parametrize("pins", [{"stem": "direct"}, {"stem": "bogus"}, "no-equals-sign"])
def test_pins_below_o2_are_refused_with_the_option_and_its_form(opt_level: int, how: str, pins: object) -> None:
    """At -O0 / -O1 the algorithm pass does not run: a pin, well-formed or not, is named, never ignored."""
    kw = {"algo": pins} if how == "algo=" else {"pass_options": {"choose_conv_algo": {"algo": pins}}}
    with pytest.raises(OptionError, match=rf"--algo would be ignored: .* at -O{opt_level} .*LAYER=ALGORITHM"
                                          rf".*use -O2 or -O3"):
        convc.compile(small_cnn(), opt_level=opt_level, **kw)  # type: ignore[arg-type]


def test_a_backend_specific_algorithm_is_chosen_and_the_numerics_check_still_runs() -> None:
    """Triton lists implicit_gemm, which the NumPy reference does not have: the check runs anyway."""
    g, ctx, manager = optimize(small_cnn(), backend="triton", check_numerics=True)
    plan = ctx.results["plan"]
    assert {lp.layer for lp in plan.layers} == {"stem", "down", "pointwise", "temporal"}
    for lp in plan.layers:
        assert "implicit_gemm" in lp.times and g.node(lp.layer).attrs["algo"] == lp.algo
    chosen = next(r for r in manager.records if r.name == "choose_conv_algo")
    assert chosen.error is not None and manager.records[-1].name == "fuse_input_scale"  # Triton's last pass


@pytest.mark.parametrize("gpu,devices,expected", [
    (None, ("cpu",), "cpu"), ("nvidia h100 80gb hbm3", ("cpu",), "cpu"),
    (None, ("cuda", "cpu"), "cpu"), ("nvidia h100 80gb hbm3", ("cuda", "cpu"), "h100"),
    ("nvidia h200", ("cuda", "cpu"), "h200"), ("nvidia a100-sxm4-40gb", ("cuda",), "cuda"),
])
def test_the_device_profile_follows_the_backend_and_the_gpu_present(
        monkeypatch: pytest.MonkeyPatch, gpu: str | None, devices: tuple[str, ...], expected: str) -> None:
    from convc.passes import conv_algo

    monkeypatch.setattr(conv_algo, "cuda_device_name", lambda: gpu)
    target = Backend("t", Capabilities(ops=frozenset(), conv_algos=ALL, devices=devices))
    assert conv_algo.target_device(PassContext(backend=target)) == expected
