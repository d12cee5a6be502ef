"""convc.to_onnx on torchvision models with the zoo's ops (squeeze-excitation, SiLU, hardswish, GELU,
layer_norm, layer scale, channel shuffle, slices, adaptive pooling): the graph from from_torch, as built and
optimized, written as ONNX and run by onnxruntime against torch in float64."""
from __future__ import annotations

import numpy as np
import pytest

import convc
from convc.frontends.onnx_export import to_onnx
from convc.numerics import budget, rel_err

zoo = pytest.importorskip("torchvision_zoo")
ort = pytest.importorskip("onnxruntime")
pytestmark = [pytest.mark.slow, pytest.mark.zoo]


def run_onnxruntime(graph: convc.Graph, x: np.ndarray, optimized: bool) -> np.ndarray:
    proto = to_onnx(graph, optimized=optimized)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {graph.inputs[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small", "convnext_tiny",
                                  "shufflenet_v2_x0_5", "regnet_y_400mf", "vgg11"])
def test_torchvision_models_export_and_run_in_onnxruntime(name: str) -> None:
    """vgg11 at 32x32 pools its 1x1 feature map up to 7x7: adaptive pooling written as MatMuls."""
    model, x = zoo.build(name)
    net = convc.from_torch(model, x)
    with zoo.torch.no_grad():
        expected = model.double()(x.double()).numpy()
    for optimized in (False, True):
        err = rel_err(run_onnxruntime(net.graph, x.numpy(), optimized), expected)
        assert err <= budget("float32", whole_model=True), (optimized, err)
