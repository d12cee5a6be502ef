"""from_onnx on the layers of mobile and modern CNNs, exported by torch.onnx.export (opset 20, where GELU
is one Gelu node), against torch in float64: hard activations and clips, SiLU as Sigmoid * x,
squeeze-excitation's Mul, layer scale, ConvNeXt's Transpose / LayerNormalization / MatMul between
channels-last transposes, and ShuffleNet's Reshape / Transpose / Split / Slice."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from frontend_helpers import assert_matches, randomize_batch_norm, run_convc, torch_reference
from onnx import helper
from test_onnx_import import ATTRIBUTE_PRECISION, export, make_model
from test_torch_layers import Activations, ConvNeXtBlock, ShuffleUnit, SqueezeExcite
from torch import nn

import convc
from convc.frontends import from_onnx
from convc.frontends.building import FrontendError


def check(model: nn.Module, *shape: int) -> convc.Network:
    model = model.double().eval()
    randomize_batch_norm(model)
    x = torch.randn(*shape, dtype=torch.float64)
    net = from_onnx(export(model, x, opset=20))
    assert_matches(run_convc(net, x.numpy()), torch_reference(model, x), tolerance=ATTRIBUTE_PRECISION)
    return net


def test_activations() -> None:
    net = check(Activations(), 2, 3, 6, 6)
    assert {"hardswish", "hardsigmoid", "gelu", "clip"} <= {n.op for n in net.graph.nodes()}


def test_squeeze_excitation_and_layer_scale() -> None:
    net = check(SqueezeExcite(), 2, 3, 5, 7)
    assert len(net.graph.nodes("channel_scale")) == 2


def test_convnext_block_through_transposes() -> None:
    net = check(ConvNeXtBlock(), 2, 8, 6, 6)
    assert len(net.graph.nodes("layer_norm")) == 3 and len(net.graph.nodes("conv2d")) == 3


class ShuffleUnitOfViews(ShuffleUnit):
    """ShuffleUnit with its F.channel_shuffle (which the ONNX exporter lacks) written as views."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), dim=1)
        out = out.view(2, 2, 6, 4, 3).transpose(1, 2).reshape(2, 12, 4, 3)
        a, b = torch.split(out, [5, 7], dim=1)
        shuffled = torch.cat([b, a], 1).view(2, 3, 4, 4, 3).transpose(1, 2).flatten(1, 2)
        return torch.cat([shuffled, out[:, 2:9], x[:, :4]], 1)


def test_shuffle_unit() -> None:
    net = check(ShuffleUnitOfViews(), 2, 12, 4, 3)
    assert len(net.graph.nodes("channel_shuffle")) == 2


def test_clip_before_opset_11_takes_attributes() -> None:
    nodes = [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.25)]
    net = from_onnx(make_model(nodes, {"x": (1, 2, 3, 3)}, ["y"], opset=10))
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 3))
    np.testing.assert_array_equal(run_convc(net, x)[0], np.clip(x, -0.5, 0.25))


@pytest.mark.parametrize("node, fragment", [
    (helper.make_node("HardSigmoid", ["x"], ["y"], alpha=0.2), "alpha=0.2"),
    (helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3]), "Transpose (0, 2, 1, 3)"),
    (helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=1), "LayerNormalization over axes 1"),
], ids=["hardsigmoid-alpha", "transpose", "layer-norm-axis"])
def test_unsupported_forms_are_named(node: onnx.NodeProto, fragment: str) -> None:
    inits = {"s": np.ones((3, 4, 5), np.float32)}
    with pytest.raises(FrontendError) as info:
        from_onnx(make_model([node], {"x": (2, 3, 4, 5)}, ["y"], initializers=inits))
    assert fragment in str(info.value)
