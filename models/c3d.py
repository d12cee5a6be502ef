"""C3D (Tran et al. 2015): 3D convolutions over video clips, every kernel 3x3x3 with stride 1, pad 1.

    3x16x112x112 -> conv1a 64 -> pool1 1x2x2 -> conv2a 128 -> pool2 2x2x2 -> conv3a, 3b 256 -> pool3
                 -> conv4a, 4b 512 -> pool4 -> conv5a, 5b 512 -> pool5 (pads H, W by 1) -> 512x1x4x4
                 -> fc6 4096 -> fc7 4096 -> fc8 num_classes (487 Sports-1M classes by default)

pool1 keeps the time axis so that temporal information is not merged too early, as in the paper.
`width` scales every conv and FC width (width=0.125 gives 8..64 channels), so tests can shrink it.
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network
from convc.models.catalog import example_shape, new_network, positive_number, register_model

# (name, channels) of each conv, None for a pool; pool kernels below.
C3D_LAYERS: tuple[tuple[str, int] | None, ...] = (
    ("conv1a", 64), None, ("conv2a", 128), None, ("conv3a", 256), ("conv3b", 256), None,
    ("conv4a", 512), ("conv4b", 512), None, ("conv5a", 512), ("conv5b", 512), None,
)
POOLS = (((1, 2, 2), (0, 0, 0)), ((2, 2, 2), (0, 0, 0)), ((2, 2, 2), (0, 0, 0)), ((2, 2, 2), (0, 0, 0)),
         ((2, 2, 2), (0, 1, 1)))  # (kernel = stride, padding); pool5 pads H and W: 7x7 -> 4x4
FC_WIDTH = 4096


def build_c3d(name: str, *, num_classes: int = 487, input_size: int | Sequence[int] = (16, 112, 112),
              width: float = 1.0, batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    """`input_size`: (frames, H, W), (3, frames, H, W), or an int for H = W with 16 frames."""
    width = positive_number(name, "width", width)
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (16, input_size, input_size)
    example = example_shape(name, input_size, channels=3, spatial_dims=3)
    net, x = new_network(name, batch, example, seed, dtype)
    pools = iter(enumerate(POOLS, start=1))
    for layer in C3D_LAYERS:
        if layer is None:
            index, (kernel, padding) = next(pools)
            x = net.max_pool3d(x, kernel, stride=kernel, padding=padding, name=f"pool{index}")
        else:
            conv_name, channels = layer
            x = net.conv3d(x, max(1, round(channels * width)), 3, padding=1, name=conv_name)
            x = net.relu(x, name=f"relu_{conv_name}")
    x = net.flatten(x, name="flatten")
    fc_width = max(1, round(FC_WIDTH * width))
    x = net.dropout(net.relu(net.linear(x, fc_width, name="fc6"), name="relu6"), 0.5, name="drop6")
    x = net.dropout(net.relu(net.linear(x, fc_width, name="fc7"), name="relu7"), 0.5, name="drop7")
    return net.output(net.linear(x, num_classes, name="fc8"))


register_model("c3d", "C3D (Tran 2015): 8 3x3x3 convs, 5 max pools (pool1 1x2x2), 3 FC; 3x16x112x112 "
               "video clips", build_c3d)
