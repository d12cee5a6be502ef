"""ResNets against torchvision's parameter counts and He et al.'s Table 1 (output sizes, multiply-adds)."""
from __future__ import annotations

import pytest
from zoo_helpers import trainable_params, weightless, weightless_summary

# name: (torchvision parameter count, paper's multiply-adds in 10^9)
PUBLISHED = {
    "resnet18": (11_689_512, 1.8),
    "resnet34": (21_797_672, 3.6),
    "resnet50": (25_557_032, 3.8),
    "resnet101": (44_549_160, 7.6),
    "resnet152": (60_192_808, 11.3),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_count_equals_torchvision_and_macs_are_within_10_percent_of_the_paper(name: str) -> None:
    params, gmacs = PUBLISHED[name]
    assert trainable_params(weightless(name)) == params
    assert weightless_summary(name).total_macs / 1e9 == pytest.approx(gmacs, rel=0.10)


def test_resnet50_has_torchvisions_4_09_gmacs() -> None:
    # v1.5 moves the stride to the 3x3, which costs more than the paper's 3.8 (REFERENCE.md: 4.09).
    assert round(weightless_summary("resnet50").total_macs / 1e9, 2) == 4.09


@pytest.mark.parametrize("name, width", [("resnet18", 512), ("resnet50", 2048)])
def test_stage_output_sizes_follow_table1(name: str, width: int) -> None:
    s = weightless_summary(name)
    g = weightless(name).graph
    last = {stage: [n.name for n in g.nodes("relu") if n.name.startswith(f"layer{stage}.")][-1]
            for stage in (1, 2, 3, 4)}
    assert s.layer("conv1").shape == (1, 64, 112, 112)  # conv1: 112x112
    assert s.layer("maxpool").shape == (1, 64, 56, 56)
    expansion = width // 512
    for stage, size in zip((1, 2, 3, 4), (56, 28, 14, 7)):  # conv2_x .. conv5_x
        assert s.layer(last[stage]).shape == (1, 64 * 2 ** (stage - 1) * expansion, size, size)
    assert s.layer("fc").shape == (1, 1000)
    assert g.param_of(g.node("fc"), "weight").shape == (1000, width)


def test_bottleneck_v1_5_puts_the_stride_on_the_3x3_and_projects_the_shortcut() -> None:
    g = weightless("resnet50").graph
    assert g.node("layer2.0.conv1").attrs["stride"] == (1, 1)
    assert g.node("layer2.0.conv2").attrs["stride"] == (2, 2)
    assert g.node("layer2.0.conv2").attrs["kernel"] == (3, 3)
    assert g.node("layer2.0.downsample.0").attrs["stride"] == (2, 2)
    assert g.node("layer2.0.downsample.0").attrs["kernel"] == (1, 1)
    assert g.node("layer2.0.downsample.1").op == "batch_norm"
    assert "layer2.1.downsample.0" not in g  # same width and stride: an identity shortcut
    assert "layer1.0.downsample.0" in g      # 64 -> 256 channels needs a projection even at stride 1
    assert not any(g.node(n.name).attrs["bias"] for n in g.nodes("conv2d"))


def test_basic_block_shortcuts() -> None:
    g = weightless("resnet18").graph
    assert "layer1.0.downsample.0" not in g  # 64 -> 64 at stride 1
    assert g.node("layer3.0.conv1").attrs["stride"] == (2, 2)
    assert g.node("layer3.0.downsample.0").attrs["stride"] == (2, 2)
    adds = g.nodes("add")
    assert len(adds) == 8  # one per block
    # Residual operands: a block's last BN, the previous block's ReLU, or (for layer1.0) the stem pool.
    assert {g.node(i).op for a in adds for i in a.inputs} == {"batch_norm", "relu", "max_pool2d"}


def test_state_dict_keys_are_torchvisions() -> None:
    keys = set(weightless("resnet18").state_dict())
    for key in ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                "layer1.0.conv1.weight", "layer1.1.bn2.running_var", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_mean", "layer4.1.conv2.weight", "fc.weight", "fc.bias"):
        assert key in keys, key
    assert len(keys) == 102  # torchvision's resnet18 state_dict: 122 keys less 20 num_batches_tracked
