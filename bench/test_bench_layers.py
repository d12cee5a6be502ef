"""Single conv layers of ResNet-50 and VGG-16, each algorithm of each available backend.

    pytest bench/test_bench_layers.py --benchmark-only --benchmark-columns=median,ops
    CONVC_BENCH_BACKENDS=triton,torch pytest bench/test_bench_layers.py -k "vgg16" --benchmark-only

Each layer is a conv2d + bias + ReLU epilogue (what conv + batch norm + ReLU becomes after fold_bn and
fuse_epilogue), compiled at -O0 with the algorithm pinned, so the number is that algorithm's alone. Layers
are full size on a GPU; on a CPU spatial sizes shrink 4x and channels 2x. An algorithm that does not apply
(Winograd on a 1x1 or strided conv) is skipped with the backend's reason. Extra info: TFLOP/s.
"""
from __future__ import annotations

from typing import Any

import pytest
from bench_support import (BATCH, CPU_REDUCTION, ON_CUDA, bench_backends, compile_or_skip, conv_algos,
                           device_or_skip, time_runner)

from convc.dsl import Network
from convc.ir import Graph

# name: (in channels, input size, out channels, kernel, stride, padding); torchvision's layouts.
LAYERS: dict[str, tuple[int, int, int, int, int, int]] = {
    "resnet50.conv1": (3, 224, 64, 7, 2, 3),
    "resnet50.layer1.1.conv1": (256, 56, 64, 1, 1, 0),
    "resnet50.layer1.0.conv2": (64, 56, 64, 3, 1, 1),
    "resnet50.layer1.0.conv3": (64, 56, 256, 1, 1, 0),
    "resnet50.layer2.0.conv2": (128, 56, 128, 3, 2, 1),
    "resnet50.layer2.1.conv2": (128, 28, 128, 3, 1, 1),
    "resnet50.layer3.1.conv2": (256, 14, 256, 3, 1, 1),
    "resnet50.layer4.1.conv2": (512, 7, 512, 3, 1, 1),
    "vgg16.conv1_2": (64, 224, 64, 3, 1, 1),
    "vgg16.conv2_2": (128, 112, 128, 3, 1, 1),
    "vgg16.conv3_2": (256, 56, 256, 3, 1, 1),
    "vgg16.conv4_2": (512, 28, 512, 3, 1, 1),
    "vgg16.conv5_2": (512, 14, 512, 3, 1, 1),
}


def layer_graph(name: str, algo: str | None) -> tuple[Graph, int]:
    """The layer as a one-conv graph with the algorithm pinned, and its FLOPs (2 per MAC)."""
    c, size, o, k, s, p = LAYERS[name]
    if not ON_CUDA:
        c = c if c <= 3 else c // 2
        o, size = o // 2, max(size // CPU_REDUCTION, 7)
    net = Network(name.replace(".", "_"))
    x = net.input((BATCH, c, size, size))
    net.output(net.conv2d(x, o, k, stride=s, padding=p, name="conv"))
    graph = net.graph
    node = graph.node("conv")
    graph.replace_node(node.replace(attrs={**node.attrs, "algo": algo, "epilogue": (("relu",),)}))
    graph.verify()
    out = node.type.shape
    return graph, 2 * out[0] * out[1] * out[2] * out[3] * c * k * k


CASES = [(backend, algo) for backend in bench_backends() for algo in conv_algos(backend)]


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize(("backend", "algo"), CASES, ids=[f"{b}-{a or 'auto'}" for b, a in CASES])
def test_conv_layer(benchmark: Any, backend: str, algo: str | None, layer: str) -> None:
    device = device_or_skip(backend)
    graph, flops = layer_graph(layer, algo)
    runner = compile_or_skip(graph, backend, device, opt_level=0)
    benchmark.group = layer
    benchmark.extra_info.update({"layer": layer, "algo": algo, "flops": flops,
                                 "shape": list(graph.node("conv").type.shape)})
    time_runner(benchmark, runner, flops=flops)
