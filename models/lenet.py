"""LeNet-5 (LeCun et al. 1998) in its common modern form: CONV-POOL-CONV-POOL-FC-FC-FC.

    1x32x32 -> conv1 6@5x5 tanh -> 6x28x28 -> avg pool 2x2/2 -> 6x14x14
            -> conv2 16@5x5 tanh -> 16x10x10 -> avg pool 2x2/2 -> 16x5x5
            -> fc1 120 tanh -> fc2 84 tanh -> fc3 10                     61,706 parameters

The original's subsampling layers had a trainable coefficient and bias per map and C3 connected only
some input maps; like most textbook versions, this one uses plain average pooling and full
connectivity, which is what the published 61,706 counts.
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network
from convc.models.catalog import example_shape, new_network, register_model


def build_lenet5(name: str, *, num_classes: int = 10, input_size: int | Sequence[int] = 32,
                 batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    net, x = new_network(name, batch, example_shape(name, input_size, channels=1), seed, dtype)
    x = net.avg_pool2d(net.tanh(net.conv2d(x, 6, 5, name="conv1")), 2, name="pool1")
    x = net.avg_pool2d(net.tanh(net.conv2d(x, 16, 5, name="conv2")), 2, name="pool2")
    x = net.flatten(x, name="flatten")
    x = net.tanh(net.linear(x, 120, name="fc1"))
    x = net.tanh(net.linear(x, 84, name="fc2"))
    return net.output(net.linear(x, num_classes, name="fc3"))


register_model("lenet5", "LeNet-5 (LeCun 1998): 2 tanh convs, average subsampling, 3 FC; 1x32x32",
               build_lenet5)
