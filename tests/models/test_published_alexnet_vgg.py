"""LeNet-5, AlexNet, ZFNet and VGG against their published shapes and counts (REFERENCE.md, cs231n)."""
from __future__ import annotations

import pytest
from zoo_helpers import trainable_params, weightless, weightless_summary


def chw(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(1, C, H, W) -> (H, W, C), the order the course's tables use."""
    return tuple(shape[2:]) + (shape[1],)


def test_lenet5_has_61706_parameters_and_the_textbook_shapes() -> None:
    s = weightless_summary("lenet5")
    assert s.total_params == 61_706
    assert [s.layer(n).shape[1:] for n in ("conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3")] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120,), (84,), (10,)]
    # C1: 6 filters of 5x5 plus biases; F5: the 16x5x5 maps fully connected to 120 units.
    assert s.layer("conv1").params == 6 * 25 + 6
    assert s.layer("fc1").params == 16 * 5 * 5 * 120 + 120


# ---------------------------------------------------------------------------- AlexNet / ZFNet
ALEXNET_SHAPES = {  # layer -> (H, W, C) as REFERENCE.md draws it
    "features.0": (55, 55, 96),    # conv1: (227 - 11) / 4 + 1 = 55
    "features.2": (27, 27, 96),    # pool1: (55 - 3) / 2 + 1 = 27
    "features.3": (27, 27, 96),    # LRN
    "features.4": (27, 27, 256),   # conv2
    "features.6": (13, 13, 256),   # pool2
    "features.8": (13, 13, 384),   # conv3
    "features.10": (13, 13, 384),  # conv4
    "features.12": (13, 13, 256),  # conv5
    "features.14": (6, 6, 256),    # pool3
}


def test_alexnet_matches_the_reference_table() -> None:
    s = weightless_summary("alexnet")
    assert s.layers[0].shape == (1, 3, 227, 227)
    for layer, shape in ALEXNET_SHAPES.items():
        assert chw(s.layer(layer).shape) == shape, layer
    assert (227 - 11) // 4 + 1 == 55 and (55 - 3) // 2 + 1 == 27  # the REFERENCE.md worked sizes
    assert s.layer("features.0").params == 34_944
    assert [s.layer(f"classifier.{i}").shape[1] for i in (1, 4, 6)] == [4096, 4096, 1000]
    assert s.total_params == 62_378_344
    lrn = weightless("alexnet").graph.node("features.3").attrs
    assert lrn == {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}


def test_zfnet_has_the_zeiler_fergus_shapes() -> None:
    s = weightless_summary("zfnet")
    assert s.layers[0].shape == (1, 3, 224, 224)
    # conv1 -> pool1 -> conv2 -> pool2 -> conv3/4/5 -> pool5: 110 -> 55 -> 26 -> 13 -> 13 -> 6
    expected = {"features.0": (110, 110, 96), "features.2": (55, 55, 96), "features.4": (26, 26, 256),
                "features.6": (13, 13, 256), "features.8": (13, 13, 512), "features.10": (13, 13, 1024),
                "features.12": (13, 13, 512), "features.14": (6, 6, 512)}
    for layer, shape in expected.items():
        assert chw(s.layer(layer).shape) == shape, layer
    g = weightless("zfnet").graph
    assert g.node("features.0").attrs["kernel"] == (7, 7) and g.node("features.0").attrs["stride"] == (2, 2)
    assert s.layer("classifier.1").params == 6 * 6 * 512 * 4096 + 4096


# ---------------------------------------------------------------------------- VGG-16, the cs231n table
# (layer, (H, W, C), weights without biases); pools have no weights.
VGG16_TABLE = [
    ("features.0", (224, 224, 64), 3 * 3 * 3 * 64), ("features.2", (224, 224, 64), 3 * 3 * 64 * 64),
    ("features.4", (112, 112, 64), 0),
    ("features.5", (112, 112, 128), 3 * 3 * 64 * 128), ("features.7", (112, 112, 128), 3 * 3 * 128 * 128),
    ("features.9", (56, 56, 128), 0),
    ("features.10", (56, 56, 256), 3 * 3 * 128 * 256), ("features.12", (56, 56, 256), 3 * 3 * 256 * 256),
    ("features.14", (56, 56, 256), 3 * 3 * 256 * 256), ("features.16", (28, 28, 256), 0),
    ("features.17", (28, 28, 512), 3 * 3 * 256 * 512), ("features.19", (28, 28, 512), 3 * 3 * 512 * 512),
    ("features.21", (28, 28, 512), 3 * 3 * 512 * 512), ("features.23", (14, 14, 512), 0),
    ("features.24", (14, 14, 512), 3 * 3 * 512 * 512), ("features.26", (14, 14, 512), 3 * 3 * 512 * 512),
    ("features.28", (14, 14, 512), 3 * 3 * 512 * 512), ("features.30", (7, 7, 512), 0),
    ("classifier.0", (4096,), 7 * 7 * 512 * 4096), ("classifier.3", (4096,), 4096 * 4096),
    ("classifier.6", (1000,), 4096 * 1000),
]


def test_vgg16_matches_the_per_layer_table() -> None:
    net = weightless("vgg16")
    s = weightless_summary("vgg16")
    for layer, shape, weights in VGG16_TABLE:
        row = s.layer(layer)
        assert (chw(row.shape) if len(row.shape) == 4 else row.shape[1:]) == shape, layer
        assert (net.graph.params[f"{layer}.weight"].size if weights else row.params) == weights, layer
    assert sum(w for _, _, w in VGG16_TABLE) == 138_344_128  # REFERENCE.md: weights alone
    assert s.total_params == 138_357_544
    assert round(s.total_macs / 1e9, 1) == 15.5  # REFERENCE.md: 15.5 GMACs per image


def test_vgg16_activations_add_up_to_the_corrected_course_total() -> None:
    # The course counts the input and the output of every CONV, POOL and FC layer; the ReLUs work in
    # place and are not counted again. Those add up to 15,237,608 values (not "24M"), 61 MB in fp32.
    s = weightless_summary("vgg16")
    counted = [r for r in s.layers if r.op in ("input", "conv2d", "max_pool2d", "linear")]
    assert len(counted) == 1 + 13 + 5 + 3
    values = sum(r.activation_bytes for r in counted) // 4
    assert values == 15_237_608
    assert round(values * 4 / 1e6) == 61
    # Every node's output: the above, once more each conv output (its ReLU), the flattened 7x7x512,
    # and the classifier's two ReLUs and two dropouts of 4096 each.
    conv_outputs = sum(r.activation_bytes for r in counted if r.op == "conv2d") // 4
    assert s.total_activation_bytes // 4 == values + conv_outputs + 7 * 7 * 512 + 4 * 4096


@pytest.mark.parametrize("name, params", [  # torchvision's published parameter counts
    ("vgg11", 132_863_336), ("vgg13", 133_047_848), ("vgg16", 138_357_544), ("vgg19", 143_667_240),
    ("vgg11_bn", 132_868_840), ("vgg13_bn", 133_053_736), ("vgg16_bn", 138_365_992),
    ("vgg19_bn", 143_678_248),
])
def test_vgg_parameter_counts_equal_torchvision(name: str, params: int) -> None:
    assert trainable_params(weightless(name)) == params
