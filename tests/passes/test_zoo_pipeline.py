"""The issue's bar on every zoo model, at reduced input sizes: after -O2 no batch_norm, dropout or
activation right after a conv/linear remains, ResNet-50's 53 convolutions carry its BNs, ReLUs and 16
residual adds, and outputs agree with the unoptimized graph on the NumPy backend (float64: 1e-10,
float32: 1e-4)."""
from __future__ import annotations

from collections import Counter
from functools import lru_cache
from typing import Any

import pytest

import convc.models
from convc.compiler import optimize
from convc.dsl import Network
from convc.ops import ACTIVATION_OPS
from pass_check import assert_same_outputs, op_counts, with_float64_params

LAYERS = ("conv1d", "conv2d", "conv3d", "linear")
# Small inputs (and narrower variants where a model offers a width) keep the suite fast; every model
# keeps its full layer structure.
OPTIONS: dict[str, dict[str, Any]] = {
    "lenet5": {}, "alexnet": {"input_size": 67}, "zfnet": {"input_size": 64}, "nin": {"input_size": 67},
    "googlenet": {"input_size": 64}, "alphago_policy": {"k": 16}, "c3d": {"input_size": (16, 16, 16),
                                                                          "width": 0.125},
    "text_cnn": {"input_size": 16, "embedding": 16, "maps": 8},
}


@lru_cache(maxsize=None)
def model(name: str) -> Network:
    opts = dict(OPTIONS.get(name, {"input_size": 32}))
    if "num_classes" in convc.models.info(name).options:
        opts.setdefault("num_classes", 10)
    net = convc.models.get(name, **opts)
    net.randomize_batch_norm(seed=1)  # non-trivial statistics, or folding a BN would be a no-op
    return net


def leftovers(g: convc.Graph) -> list[str]:
    """Nodes the pipeline should have removed: BNs, dropouts, activations right after a layer."""
    bad = [f"{n.name} ({n.op})" for n in g.nodes(("batch_norm", "dropout", "identity"))]
    for n in g.nodes(ACTIVATION_OPS):
        src = g.node(g.activation_inputs(n)[0])
        if src.op in LAYERS:
            bad.append(f"{n.name} ({n.op} after {src.op} '{src.name}')")
    return bad


DEEP = ("resnet101", "resnet152")  # the longest here (several seconds each): marked slow, still run in CI


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n
                                  for n in convc.models.names()])
def test_o2_leaves_no_bn_dropout_or_activation_after_a_layer_and_keeps_the_outputs(name: str) -> None:
    net = model(name)
    before64 = with_float64_params(net.graph)
    after64, _, _ = optimize(before64, dtype="float64", opt_level=2, check_numerics=False)
    assert leftovers(after64) == []
    assert assert_same_outputs(before64, after64, "float64") <= 1e-10
    after32, ctx, _ = optimize(net, dtype="float32", opt_level=2, check_numerics=False)
    assert leftovers(after32) == []
    assert assert_same_outputs(net.graph, after32, "float32") <= 1e-4
    convs = [n for n in after32.nodes() if n.op.startswith("conv")]
    assert all(n.attrs["algo"] is not None for n in convs)
    assert len(ctx.results["plan"].layers) == len(convs)


def test_resnet50_is_53_fused_convolutions_that_absorbed_its_16_residual_adds() -> None:
    before = model("resnet50").graph
    assert op_counts(before)["conv2d"] == 53 and op_counts(before)["add"] == 16
    g, _, _ = optimize(before, dtype="float32", check_numerics=False)
    counts = op_counts(g)
    assert counts["conv2d"] == 53
    assert counts["batch_norm"] == counts["relu"] == counts["add"] == counts["scale_shift"] == 0
    convs = g.nodes("conv2d")
    assert all(n.attrs["bias"] for n in convs)  # every BN folded in (torchvision's convs have no bias)
    epilogues = Counter(n.attrs["epilogue"] for n in convs)
    # 16 blocks end in conv3 + add + ReLU; conv1/conv2 of each block and the stem end in ReLU; the 4
    # projection shortcuts (conv + BN) feed the adds as residual operands.
    assert epilogues == {(("add",), ("relu",)): 16, (("relu",),): 33, (): 4}
    assert {g.node(n.name).name for n in convs} == {n.name for n in before.nodes("conv2d")}  # names kept
