"""The AlphaGo policy network (Silver et al. 2016, "Methods: neural network architecture").

    48x19x19 feature planes -> conv1 k@5x5 p2 relu -> conv2 .. conv12 k@3x3 p1 relu
                            -> conv13 1@1x1 (no bias) -> a separate bias per board position
                            -> flatten -> softmax over the 361 moves

k = 192 in the match version; the paper also trained k = 128, 256 and 384.
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network
from convc.models.catalog import example_shape, new_network, positive_int, register_model

FEATURE_PLANES = 48
HIDDEN_CONVS = 11  # conv2 .. conv12


def build_alphago_policy(name: str, *, k: int = 192, input_size: int | Sequence[int] = 19, batch: int = 1,
                         seed: int = 0, dtype: str = "float32") -> Network:
    k = positive_int(name, "k", k)
    net, x = new_network(name, batch, example_shape(name, input_size, channels=FEATURE_PLANES), seed, dtype)
    x = net.relu(net.conv2d(x, k, 5, padding=2, name="conv1"), name="relu1")
    for i in range(2, HIDDEN_CONVS + 2):
        x = net.relu(net.conv2d(x, k, 3, padding=1, name=f"conv{i}"), name=f"relu{i}")
    # One filter without bias: the bias that follows differs per board position, as in the paper.
    x = net.conv2d(x, 1, 1, bias=False, name=f"conv{HIDDEN_CONVS + 2}")
    x = net.bias_add(x, name="position_bias")
    return net.output(net.softmax(net.flatten(x, name="flatten"), axis=1, name="softmax"))


register_model("alphago_policy", "AlphaGo policy network (Silver 2016): 13 convs, per-position bias, "
               "softmax over 19x19 moves", build_alphago_policy)
