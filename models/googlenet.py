"""GoogLeNet, Inception v1 as Szegedy et al. 2014 published it (Table 1, Figure 3).

    224x224x3 -> conv1 64@7x7/2 -> max pool 3/2 -> LRN -> conv2 64@1x1 -> conv3 192@3x3 -> LRN
              -> max pool 3/2 -> inception 3a, 3b -> max pool 3/2 -> 4a .. 4e -> max pool 3/2
              -> 5a, 5b -> 7x7 average pool -> dropout 0.4 -> fc 1000

An inception block concatenates four branches: a 1x1 conv; a 1x1 reduce then a 3x3; a 1x1 reduce then
a 5x5 (torchvision has a 3x3 here, the paper a 5x5); a 3x3/1 max pool then a 1x1 projection. Every conv
has a bias and a ReLU; there is no batch norm and no auxiliary classifier.

Names follow torchvision (conv1.conv, inception3a.branch2.1.conv, ...; branch4.0 is the pool), with
the block's concat named after the block. Pools round up (ceil mode) as in the paper's Caffe model,
which is what gives 112 -> 56 and 56 -> 28. The final 7x7 average pool is written as a global average
pool: the same at 224x224, and it also serves smaller inputs. The LRNs are Caffe's (size 5, alpha 1e-4,
beta 0.75, k 1).
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network, Value
from convc.models.catalog import example_shape, new_network, register_model

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
# The blocks after which a 3x3/2 max pool halves the grid.
POOL_AFTER = {"inception3b": "maxpool3", "inception4e": "maxpool4"}


def _basic_conv(net: Network, x: Value, filters: int, kernel: int, name: str, stride: int = 1,
                padding: int = 0) -> Value:
    """conv + ReLU in a scope, torchvision's BasicConv2d without its batch norm."""
    with net.scope(name):
        return net.relu(net.conv2d(x, filters, kernel, stride=stride, padding=padding, name="conv"),
                        name="relu")


def _inception(net: Network, x: Value, name: str, widths: tuple[int, int, int, int, int, int]) -> Value:
    n1x1, n3x3_reduce, n3x3, n5x5_reduce, n5x5, pool_proj = widths
    with net.scope(name):
        branch1 = _basic_conv(net, x, n1x1, 1, "branch1")
        with net.scope("branch2"):
            branch2 = _basic_conv(net, _basic_conv(net, x, n3x3_reduce, 1, "0"), n3x3, 3, "1", padding=1)
        with net.scope("branch3"):
            branch3 = _basic_conv(net, _basic_conv(net, x, n5x5_reduce, 1, "0"), n5x5, 5, "1", padding=2)
        with net.scope("branch4"):
            pooled = net.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, name="0")
            branch4 = _basic_conv(net, pooled, pool_proj, 1, "1")
    return net.concat([branch1, branch2, branch3, branch4], axis=1, name=name)


def build_googlenet(name: str, *, num_classes: int = 1000, input_size: int | Sequence[int] = 224,
                    batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    net, x = new_network(name, batch, example_shape(name, input_size, channels=3), seed, dtype)
    x = _basic_conv(net, x, 64, 7, "conv1", stride=2, padding=3)
    x = net.max_pool2d(x, 3, stride=2, ceil_mode=True, name="maxpool1")
    x = net.lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, name="lrn1")
    x = _basic_conv(net, x, 64, 1, "conv2")
    x = _basic_conv(net, x, 192, 3, "conv3", padding=1)
    x = net.lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0, name="lrn2")
    x = net.max_pool2d(x, 3, stride=2, ceil_mode=True, name="maxpool2")
    for block, widths in INCEPTION_BLOCKS.items():
        x = _inception(net, x, block, widths)
        if block in POOL_AFTER:
            x = net.max_pool2d(x, 3, stride=2, ceil_mode=True, name=POOL_AFTER[block])
    x = net.flatten(net.global_avg_pool(x, name="avgpool"), name="flatten")
    x = net.dropout(x, 0.4, name="dropout")
    return net.output(net.linear(x, num_classes, name="fc"))


register_model("googlenet", "GoogLeNet / Inception v1 (Szegedy 2014): 9 inception blocks, LRN, no BN; "
               "224x224x3", build_googlenet)
