"""from_torch on the layers of mobile and modern CNNs, in module, functional and method forms, against
torch in float64: hard activations, SiLU, GELU, ReLU6 / Hardtanh / clamp, squeeze-excitation's multiply,
layer scale, LayerNorm of channels-last tensors between permutes (ConvNeXt), channel shuffle and chunk
(ShuffleNet), slicing, stochastic depth, and adaptive average pooling to any size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from frontend_helpers import assert_matches, randomize_batch_norm, run_convc, torch_reference
from torch import nn

import convc
from convc.frontends import from_torch
from convc.frontends.building import FrontendError


def check(model: nn.Module, *shape: int) -> convc.Network:
    model = model.double().eval()
    randomize_batch_norm(model)
    x = torch.randn(*shape, dtype=torch.float64)
    net = from_torch(model, x)
    assert_matches(run_convc(net, x.numpy()), torch_reference(model, x))
    return net


class Activations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.acts = nn.Sequential(nn.Hardswish(), nn.ReLU6(), nn.Hardsigmoid(), nn.SiLU(), nn.GELU(),
                                  nn.GELU(approximate="tanh"), nn.Hardtanh(-0.3, 0.4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.acts(self.conv(x) * 3)
        y = F.hardswish(y) + F.silu(y) + F.gelu(y) + F.relu6(y) + F.hardsigmoid(y) + F.hardtanh(y)
        return y.clamp(-0.5, 2.0) + torch.clamp(y, min=0.1) + y.clip(max=0.2)


def test_activations_in_every_form() -> None:
    net = check(Activations(), 2, 3, 6, 6)
    ops = {n.op for n in net.graph.nodes()}
    assert {"hardswish", "hardsigmoid", "silu", "gelu", "clip"} <= ops


class SqueezeExcite(nn.Module):
    """torchvision's SqueezeExcitation shape: pool -> 1x1 -> act -> 1x1 -> sigmoid -> scale * input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.gamma = nn.Parameter(torch.linspace(0.5, 2.0, 16).reshape(16, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.conv(x))
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(y)))))
        y = scale * y
        return torch.mul(self.gamma, y.mul(2.0))


def test_squeeze_excitation_and_layer_scale() -> None:
    net = check(SqueezeExcite(), 2, 3, 5, 7)
    assert [n.op for n in net.graph.nodes("mul")] == ["mul"]
    assert len(net.graph.nodes("channel_scale")) == 2
    assert "gamma" in net.graph.params and net.graph.params["gamma"].shape == (16,)


class ConvNeXtBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8, eps=1e-6)
        self.pwconv1, self.pwconv2 = nn.Linear(8, 32), nn.Linear(32, 8)
        self.head_norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        y = torch.permute(y, (0, 3, 1, 2)) + x
        z = F.layer_norm(y.permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2)  # LayerNorm2d without affine
        return self.fc(self.head_norm(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1)))


def test_convnext_block_through_channels_last_permutes() -> None:
    model = ConvNeXtBlock()
    net = check(model, 2, 8, 6, 6)
    assert len(net.graph.nodes("layer_norm")) == 3
    assert net.graph.node("pwconv1").op == "conv2d"
    expected = {k for k in model.state_dict()}
    assert expected <= set(net.graph.params)
    net.load_state_dict({**{k: v for k, v in net.state_dict().items() if k not in expected},
                         **model.state_dict()})  # a Linear's (O, C) weight loads into the 1x1 conv


class ShuffleUnit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(6, 6, 1), nn.BatchNorm2d(6), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch(x2)), dim=1)
        n, c, h, w = out.size()
        out = out.view(n, 2, c // 2, h, w)
        out = torch.transpose(out, 1, 2).contiguous()
        out = out.view(n, -1, h, w)
        a, b = torch.split(out, [5, 7], dim=1)
        return torch.cat([nn.functional.channel_shuffle(torch.cat([b, a], 1), 3), out[:, 2:9], x[:, :4]], 1)


def test_shuffle_unit_chunk_view_transpose_and_slices() -> None:
    net = check(ShuffleUnit(), 2, 12, 4, 3)
    assert len(net.graph.nodes("channel_shuffle")) == 2


class Heads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = pytest.importorskip("torchvision.ops").StochasticDepth(0.3, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.drop(x)
        return torch.cat([F.adaptive_avg_pool2d(y, (3, 2)).flatten(1), nn.AdaptiveAvgPool2d(5)(y).flatten(1),
                          y.narrow(1, 1, 2).mean((2, 3))], 1)


def test_adaptive_pools_of_any_size_and_stochastic_depth() -> None:
    net = check(Heads(), 2, 4, 7, 1)
    assert len(net.graph.nodes("adaptive_avg_pool")) == 2


@pytest.mark.parametrize("forward, message", [
    (lambda x: x.permute(0, 3, 2, 1), "permute"),
    (lambda x: F.layer_norm(x, (4, 4)), "layer norm over the last 2 axes"),
    (lambda x: x.view(1, 4, 2, 8).sum(), "not supported"),
    (lambda x: x * torch.ones(1, 1, 4, 4), "per-channel or scalar constant"),
])
def test_unsupported_layouts_are_reported_with_the_node(forward, message: str) -> None:
    class Model(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return forward(x)

    with pytest.raises(FrontendError, match=message):
        from_torch(Model(), torch.randn(1, 4, 4, 4))


def test_training_mode_stochastic_depth_is_refused() -> None:
    tv_ops = pytest.importorskip("torchvision.ops")
    model = nn.Sequential(nn.Conv2d(2, 2, 1), tv_ops.StochasticDepth(0.2, "row")).train()
    with pytest.raises(FrontendError, match="model.eval"):
        from_torch(model, torch.randn(1, 2, 3, 3))


def test_float32_run_stays_in_budget() -> None:
    model = ConvNeXtBlock().double().eval()
    x = torch.randn(1, 8, 5, 5, dtype=torch.float64)
    got = run_convc(from_torch(model, x), x.numpy().astype(np.float32), dtype="float32")
    assert_matches(got, torch_reference(model, x), dtype="float32")
