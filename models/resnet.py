"""ResNet (He et al. 2015) in torchvision's v1.5 layout: the stride of a bottleneck sits on its 3x3 conv.

    224x224x3 -> conv1 64@7x7/2 -> bn1 -> relu -> max pool 3/2 p1 -> layer1 .. layer4 -> global
    average pool -> fc

Basic blocks (resnet18/34) are two 3x3 convs; bottlenecks (resnet50/101/152) are 1x1, 3x3, 1x1 with a
4x wider output. A block whose stride or width changes gets a projection shortcut (`downsample`:
1x1 conv + batch norm). Names are torchvision's state_dict keys (conv1, bn1, layer2.0.downsample.0, fc),
so torchvision weights load by name; parameter counts equal torchvision's.
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network, Value
from convc.models.catalog import example_shape, new_network, register_model

# name -> (bottleneck?, blocks per stage)
RESNET_CONFIGS: dict[str, tuple[bool, tuple[int, int, int, int]]] = {
    "resnet18": (False, (2, 2, 2, 2)),
    "resnet34": (False, (3, 4, 6, 3)),
    "resnet50": (True, (3, 4, 6, 3)),
    "resnet101": (True, (3, 4, 23, 3)),
    "resnet152": (True, (3, 8, 36, 3)),
}
BOTTLENECK_EXPANSION = 4


def _conv_bn(net: Network, x: Value, filters: int, kernel: int, stride: int, index: int) -> Value:
    """conv{index} (no bias: the batch norm after it has one) then bn{index}."""
    padding = kernel // 2
    x = net.conv2d(x, filters, kernel, stride=stride, padding=padding, bias=False, name=f"conv{index}")
    return net.batch_norm(x, name=f"bn{index}")


def _shortcut(net: Network, x: Value, filters: int, stride: int) -> Value:
    if stride == 1 and x.shape[1] == filters:
        return x
    with net.sequential("downsample"):
        return net.batch_norm(net.conv2d(x, filters, 1, stride=stride, bias=False))


def _basic_block(net: Network, x: Value, planes: int, stride: int) -> Value:
    out = net.relu(_conv_bn(net, x, planes, 3, stride, 1), name="relu1")
    out = _conv_bn(net, out, planes, 3, 1, 2)
    return net.relu(net.add(out, _shortcut(net, x, planes, stride), name="add"), name="relu2")


def _bottleneck(net: Network, x: Value, planes: int, stride: int) -> Value:
    out = net.relu(_conv_bn(net, x, planes, 1, 1, 1), name="relu1")
    out = net.relu(_conv_bn(net, out, planes, 3, stride, 2), name="relu2")
    out = _conv_bn(net, out, planes * BOTTLENECK_EXPANSION, 1, 1, 3)
    shortcut = _shortcut(net, x, planes * BOTTLENECK_EXPANSION, stride)
    return net.relu(net.add(out, shortcut, name="add"), name="relu3")


def build_resnet(name: str, *, num_classes: int = 1000, input_size: int | Sequence[int] = 224,
                 batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    bottleneck, blocks = RESNET_CONFIGS[name]
    block = _bottleneck if bottleneck else _basic_block
    net, x = new_network(name, batch, example_shape(name, input_size, channels=3), seed, dtype)
    x = net.conv2d(x, 64, 7, stride=2, padding=3, bias=False, name="conv1")
    x = net.relu(net.batch_norm(x, name="bn1"), name="relu")
    x = net.max_pool2d(x, 3, stride=2, padding=1, name="maxpool")
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for i in range(count):
            stride = 2 if stage > 1 and i == 0 else 1
            with net.scope(f"layer{stage}"), net.scope(i):
                x = block(net, x, planes, stride)
    x = net.flatten(net.global_avg_pool(x, name="avgpool"), name="flatten")
    return net.output(net.linear(x, num_classes, name="fc"))


_PAPER_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}
for _name, (_bottleneck_used, _blocks) in RESNET_CONFIGS.items():
    _kind = "bottleneck" if _bottleneck_used else "basic"
    register_model(_name, f"ResNet-{_name[6:]} (He 2015, torchvision v1.5): {sum(_blocks)} {_kind} blocks; "
                   f"224x224x3, ~{_PAPER_GMACS[_name]} GMACs in the paper", build_resnet)
