"""A small torch CNN (conv, batch norm, residual add, pooling, linear, softmax) and its convc import: the
shared subject of the any-batch and saved-artifact tests, checked against torch in float64."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import convc


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.conv2(y) + y)
        return torch.softmax(self.fc(torch.flatten(self.pool(y), 1)), dim=1)


def small_module(seed: int = 0) -> SmallNet:
    torch.manual_seed(seed)
    module = SmallNet().eval()
    with torch.no_grad():
        module.bn1.running_mean.uniform_(-0.5, 0.5)
        module.bn1.running_var.uniform_(0.5, 2.0)
    return module


def small_net(module: SmallNet | None = None) -> convc.Network:
    """The module imported at batch 1 (8x8 inputs)."""
    return convc.from_torch(module or small_module(), torch.randn(1, 3, 8, 8), name="small")


def torch_reference(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """The module itself in float64: the independent reference."""
    with torch.no_grad():
        return module.double()(torch.from_numpy(np.asarray(x, np.float64))).numpy()


def inputs(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 8, 8))
