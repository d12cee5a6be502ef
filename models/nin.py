"""Network in Network (Lin, Chen & Yan 2013), the ImageNet variant: four mlpconv blocks, no FC layers.

Each mlpconv block is a spatial conv followed by two 1x1 convs ("cascaded cross channel parametric
pooling", cccp), each with a ReLU:

    224x224x3 -> mlpconv 96@11x11/4 -> 54 -> max pool 3/2 -> 26
              -> mlpconv 256@5x5 p2 -> 26 -> max pool 3/2 -> 12
              -> mlpconv 384@3x3 p1 -> 12 -> max pool 3/2 -> 5 -> dropout 0.5
              -> mlpconv num_classes@3x3 p1 -> 5 -> global average pool -> num_classes

The last block has one map per class, so the global average pool yields the class scores directly.
Layer names follow the authors' Caffe model (conv1, cccp1, cccp2, pool1, conv2, cccp3, ...).
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network, Value
from convc.models.catalog import example_shape, new_network, register_model


def _mlpconv(net: Network, x: Value, block: int, filters: int, kernel: int, stride: int,
             padding: int) -> Value:
    x = net.relu(net.conv2d(x, filters, kernel, stride=stride, padding=padding, name=f"conv{block}"),
                 name=f"relu{block}")
    for i in (2 * block - 1, 2 * block):  # block 1 has cccp1 and cccp2, block 2 cccp3 and cccp4, ...
        x = net.relu(net.conv2d(x, filters, 1, name=f"cccp{i}"), name=f"relu_cccp{i}")
    return x


def build_nin(name: str, *, num_classes: int = 1000, input_size: int | Sequence[int] = 224,
              batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    net, x = new_network(name, batch, example_shape(name, input_size, channels=3), seed, dtype)
    x = net.max_pool2d(_mlpconv(net, x, 1, 96, 11, 4, 0), 3, stride=2, name="pool1")
    x = net.max_pool2d(_mlpconv(net, x, 2, 256, 5, 1, 2), 3, stride=2, name="pool2")
    x = net.max_pool2d(_mlpconv(net, x, 3, 384, 3, 1, 1), 3, stride=2, name="pool3")
    x = _mlpconv(net, net.dropout(x, 0.5, name="drop"), 4, num_classes, 3, 1, 1)
    return net.output(net.flatten(net.global_avg_pool(x, name="pool4"), name="flatten"))


register_model("nin", "Network in Network (Lin 2013): 4 mlpconv blocks, global average pool; 224x224x3",
               build_nin)
