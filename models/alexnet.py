"""AlexNet (Krizhevsky et al. 2012) as one tower, and ZFNet (Zeiler & Fergus 2013), its retuned variant.

    AlexNet  227x227x3 -> conv1 96@11x11/4 -> 55 -> pool 3/2 -> 27 -> LRN -> conv2 256@5x5 p2 -> 27
             -> pool -> 13 -> LRN -> conv3 384, conv4 384, conv5 256 (3x3 p1) -> 13 -> pool -> 6x6x256
             -> fc 4096 -> fc 4096 -> fc 1000                                   62,378,344 parameters
    ZFNet    224x224x3 -> conv1 96@7x7/2 p1 -> 110 -> pool 3/2 -> 55 -> LRN -> conv2 256@5x5/2 -> 26
             -> pool -> 13 -> LRN -> conv3 512, conv4 1024, conv5 512 (3x3 p1) -> 13 -> pool -> 6x6x512
             -> fc 4096 -> fc 4096 -> fc 1000

Layers are named as torchvision names AlexNet's (features.N, classifier.N), with the two LRN layers
taking their places in `features`, so the indices after them shift.

ZFNet's shapes are those of Zeiler & Fergus's Figure 3. To get them: conv1 pads 1 ((224 + 2 - 7) / 2 + 1
= 110); conv2 has stride 2 and no padding as in the paper ((55 - 5) / 2 + 1 = 26); the first two pools
use ceil mode, as Caffe pools do (ceil((110 - 3) / 2) + 1 = 55 and ceil((26 - 3) / 2) + 1 = 13), which
keeps the edge pixels without padding; the last pool needs no help ((13 - 3) / 2 + 1 = 6).
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network, Value
from convc.models.catalog import example_shape, new_network, register_model

# (filters, kernel, stride, padding) of conv1..conv5.
ALEXNET_CONVS = ((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1))
ZFNET_CONVS = ((96, 7, 2, 1), (256, 5, 2, 0), (512, 3, 1, 1), (1024, 3, 1, 1), (512, 3, 1, 1))


def _features(net: Network, x: Value, convs: Sequence[tuple[int, int, int, int]], ceil_pools: bool) -> Value:
    with net.sequential("features"):
        for i, (filters, kernel, stride, padding) in enumerate(convs):
            x = net.relu(net.conv2d(x, filters, kernel, stride=stride, padding=padding))
            if i in (0, 1):  # conv1 and conv2: pool, then normalize (the course's order)
                x = net.max_pool2d(x, 3, stride=2, ceil_mode=ceil_pools)
                x = net.lrn(x, size=5, alpha=1e-4, beta=0.75, k=2.0)
        return net.max_pool2d(x, 3, stride=2)


def _classifier(net: Network, x: Value, num_classes: int) -> Value:
    x = net.flatten(x, name="flatten")
    with net.sequential("classifier"):
        x = net.dropout(x, 0.5)
        x = net.relu(net.linear(x, 4096))
        x = net.dropout(x, 0.5)
        x = net.relu(net.linear(x, 4096))
        return net.linear(x, num_classes)


def build_alexnet(name: str, *, num_classes: int = 1000, input_size: int | Sequence[int] = 227,
                  batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    net, x = new_network(name, batch, example_shape(name, input_size, channels=3), seed, dtype)
    return net.output(_classifier(net, _features(net, x, ALEXNET_CONVS, ceil_pools=False), num_classes))


def build_zfnet(name: str, *, num_classes: int = 1000, input_size: int | Sequence[int] = 224,
                batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    net, x = new_network(name, batch, example_shape(name, input_size, channels=3), seed, dtype)
    return net.output(_classifier(net, _features(net, x, ZFNET_CONVS, ceil_pools=True), num_classes))


register_model("alexnet", "AlexNet (Krizhevsky 2012), one tower with LRN; 227x227x3, 62.4M params",
               build_alexnet)
register_model("zfnet", "ZFNet (Zeiler & Fergus 2013): AlexNet with 7x7/2 conv1, 512/1024/512 conv3-5",
               build_zfnet)
