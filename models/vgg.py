"""VGG (Simonyan & Zisserman 2014): stacks of 3x3 convs (pad 1) and 2x2/2 max pools, then three FC layers.

Named as torchvision names them (features.N, classifier.0/3/6), so torchvision weights load by name.
vgg16 at 224x224: 138,357,544 parameters. The `_bn` variants put a batch norm after every conv (the
conv keeps its bias, as in torchvision).

torchvision puts an adaptive 7x7 average pool between the features and the classifier; at 224x224 the
features are already 7x7 and the pool is the identity, so it is left out here. At other input sizes
the classifier's first layer takes 512 * (H/32) * (W/32) features instead.
"""
from __future__ import annotations

from collections.abc import Sequence

from convc.dsl import Network
from convc.models.catalog import example_shape, new_network, register_model

# Output channels of each 3x3 conv, "M" for a 2x2/2 max pool (configurations A, B, D, E of the paper).
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


def build_vgg(name: str, *, num_classes: int = 1000, input_size: int | Sequence[int] = 224,
              batch: int = 1, seed: int = 0, dtype: str = "float32") -> Network:
    config = VGG_CONFIGS[name.removesuffix("_bn")]
    batch_norm = name.endswith("_bn")
    net, x = new_network(name, batch, example_shape(name, input_size, channels=3), seed, dtype)
    with net.sequential("features"):
        for item in config:
            if item == "M":
                x = net.max_pool2d(x, 2, stride=2)
                continue
            assert isinstance(item, int)
            x = net.conv2d(x, item, 3, padding=1)
            if batch_norm:
                x = net.batch_norm(x)
            x = net.relu(x)
    x = net.flatten(x, name="flatten")
    with net.sequential("classifier"):
        x = net.dropout(net.relu(net.linear(x, 4096)), 0.5)
        x = net.dropout(net.relu(net.linear(x, 4096)), 0.5)
        return net.output(net.linear(x, num_classes))


for _depth in (11, 13, 16, 19):
    _convs = sum(1 for item in VGG_CONFIGS[f"vgg{_depth}"] if item != "M")
    register_model(f"vgg{_depth}", f"VGG-{_depth} (Simonyan & Zisserman 2014): {_convs} 3x3 convs + 3 FC; "
                   f"224x224x3", build_vgg)
for _depth in (11, 13, 16, 19):
    register_model(f"vgg{_depth}_bn", f"VGG-{_depth} with batch norm after each conv (torchvision)",
                   build_vgg)
