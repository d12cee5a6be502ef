"""from_torch: every supported module and functional form, checked against torch itself in float64."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from frontend_helpers import assert_matches, randomize_batch_norm, run_convc, torch_reference
from torch import nn

import convc
from convc.frontends import from_torch
from convc.frontends.building import UnsupportedError


def check(model: nn.Module, *shapes: tuple[int, ...]) -> convc.Network:
    model = model.double().eval()
    randomize_batch_norm(model)
    inputs = [torch.randn(*s, dtype=torch.float64) for s in shapes]
    net = from_torch(model, inputs[0] if len(inputs) == 1 else tuple(inputs))
    assert_matches(run_convc(net, *[i.numpy() for i in inputs]), torch_reference(model, *inputs))
    return net


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(3, 8, 5, padding="same", dilation=2), nn.BatchNorm1d(8), nn.ELU(0.7),
            nn.MaxPool1d(3, 2, 1, ceil_mode=True), nn.Conv1d(8, 8, 3, padding="valid", groups=4, bias=False),
            nn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), nn.AdaptiveMaxPool1d(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.BatchNorm1d(4, affine=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Conv2dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=(1, 2)), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.LocalResponseNorm(3, 1e-3, 0.75, 2.0),
            nn.Conv2d(8, 8, 4, padding="same", groups=2, bias=False), nn.LeakyReLU(0.2),
            nn.AvgPool2d(3, 1, 1, count_include_pad=True), nn.Sigmoid(),
            nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(8, 5), nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.pool = nn.MaxPool3d(2)
        self.avg = nn.AvgPool3d(2, 1)
        self.gap = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gap(self.avg(self.pool(torch.relu(self.bn(self.conv(x))))))
        return self.fc(y.view(y.size(0), -1))


class Functional(nn.Module):
    """Every functional form, with parameters read through get_attr."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(6, 3, 3, 3) * 0.3)
        self.b1 = nn.Parameter(torch.randn(6) * 0.1)
        self.w2 = nn.Parameter(torch.randn(6, 6, 1, 1) * 0.3)
        self.fc_w = nn.Parameter(torch.randn(4, 12) * 0.3)
        self.fc_b = nn.Parameter(torch.randn(4) * 0.1)
        self.register_buffer("shift", torch.randn(6, 1, 1))
        self.register_buffer("bn_mean", torch.randn(6) * 0.2)
        self.register_buffer("bn_var", torch.rand(6) + 0.5)
        self.bn_scale = nn.Parameter(torch.rand(6) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
        y = F.max_pool2d(y, 2, ceil_mode=True)
        z = F.leaky_relu(F.conv2d(y, self.w2), 0.1)
        z = F.batch_norm(z, self.bn_mean, self.bn_var, self.bn_scale, None, False, 0.1, 1e-3)
        y = torch.add(y, F.elu(z, 0.5))                      # residual through torch.add
        y = y + self.shift                                   # a constant broadcast: bias_add
        y = F.local_response_norm(F.avg_pool2d(y, 3, 1, 1), 3)
        y = torch.cat([torch.sigmoid(y), torch.tanh(y)], dim=1)
        y = F.adaptive_max_pool2d(y, (2, 5))                # (4, 5) -> (2, 5): a 2x1 max pool
        y = F.dropout(F.adaptive_avg_pool2d(y, 1), 0.2, training=False)
        y = torch.flatten(y, 1)
        return F.softmax(F.linear(y.reshape(y.shape[0], -1), self.fc_w, self.fc_b), dim=-1)


class Residual(nn.Module):
    """ResNet-style blocks: in-place `+=`, a downsampling shortcut, and a spatial mean head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.downsample = nn.Sequential(nn.Conv2d(4, 8, 1, 2, bias=False), nn.BatchNorm2d(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        out = out.relu()
        return out.mean((2, 3))


@pytest.mark.parametrize("model, shape", [
    (Conv1dNet(), (2, 3, 20)),
    (Conv2dNet(), (2, 3, 15, 13)),
    (Conv3dNet(), (2, 2, 6, 6, 6)),
    (Functional(), (2, 3, 7, 9)),
    (Residual(), (2, 4, 9, 9)),
], ids=["conv1d", "conv2d", "conv3d", "functional", "residual"])
def test_outputs_match_torch_in_float64(model: nn.Module, shape: tuple[int, ...]) -> None:
    check(model, shape)


def test_parameters_are_named_by_state_dict_keys() -> None:
    model = Conv2dNet()
    net = check(model, (1, 3, 15, 13))
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(net.graph.params) == expected
    np.testing.assert_array_equal(net.graph.params["features.0.weight"],
                                  model.features[0].weight.detach().numpy())


def test_functional_parameters_keep_their_attribute_names() -> None:
    net = check(Functional(), (1, 3, 7, 9))
    assert {"w1", "b1", "w2", "fc_w", "fc_b", "bn_mean", "bn_var", "bn_scale"} <= set(net.graph.params)
    # `shift` (6, 1, 1) is spread over the (6, 4, 5) per-example shape: a new array, so a new name
    assert "shift" not in net.graph.params


def test_adaptive_pools_to_the_input_size_or_a_divisor() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.AdaptiveAvgPool2d((8, 8)), nn.AdaptiveMaxPool2d((4, 2)),
                          nn.AdaptiveAvgPool2d((None, 1)), nn.Flatten())
    net = check(model, (2, 2, 8, 8))
    assert [n.op for n in net.graph.nodes() if n.op not in ("input", "param")] == [
        "conv2d", "max_pool2d", "avg_pool2d", "flatten"]


def test_a_module_called_twice_shares_its_weights() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(torch.relu(self.conv(x)))

    net = check(Twice(), (1, 3, 6, 6))
    assert set(net.graph.params) == {"conv.weight", "conv.bias"}
    assert len(net.graph.nodes("conv2d")) == 2


def test_two_inputs_and_two_outputs() -> None:
    class TwoWay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(2, 4, 1)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s = self.a(x) + self.b(y)
            return s, torch.relu(s)

    net = check(TwoWay(), (1, 3, 5, 5), (1, 2, 5, 5))
    assert len(net.graph.inputs) == 2 and len(net.graph.outputs) == 2


def test_shape_dependent_control_flow_falls_back_to_dynamo_export() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] > 8:  # symbolic tracing cannot branch on a traced size
                x = F.max_pool2d(x, 2)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.conv(x), 1), 1))

    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(Branchy())
    net = check(Branchy(), (2, 3, 12, 12))
    assert len(net.graph.nodes("max_pool2d")) == 1
    assert {"conv.weight", "conv.bias", "fc.weight", "fc.bias"} <= set(net.graph.params)


def test_unsupported_modules_and_functions_are_listed_at_once() -> None:
    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.Mish()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.softplus(self.act(x))

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.block = Inner()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(self.conv(x)[:, ::2])

    with pytest.raises(UnsupportedError) as info:
        from_torch(Outer().eval(), torch.randn(1, 3, 8, 8))
    message = str(info.value)
    assert "module 'block.act' (torch.nn.modules.activation.Mish)" in message
    assert "torch.nn.functional.softplus in 'block'" in message
    assert "indexing or slicing a tensor" in message
    assert "3 problems" in message


@pytest.mark.parametrize("model, fragment", [
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
    (nn.MaxPool2d(3, dilation=2), "dilation"),
    (nn.BatchNorm2d(3, track_running_stats=False), "track_running_stats=False"),
    (nn.AdaptiveMaxPool2d(3), "adaptive max pooling of (8, 8) to (3, 3)"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(6, 2)), "flatten before it"),
], ids=["reflect-padding", "dilated-pool", "batch-statistics", "adaptive-non-divisor", "linear-on-4d"])
def test_what_the_ir_cannot_express_is_named(model: nn.Module, fragment: str) -> None:
    with pytest.raises(convc.ConvcError, match="cannot import") as info:
        from_torch(nn.Sequential(model).eval(), torch.randn(1, 3, 8, 8))
    assert fragment in str(info.value)


def test_training_mode_warns_and_imports_inference_semantics() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
    randomize_batch_norm(model)
    x = torch.randn(2, 3, 6, 6)
    with pytest.warns(UserWarning, match="training mode"):
        net = from_torch(model, x)
    expected = torch_reference(model.eval(), x)
    assert_matches(run_convc(net, x.numpy(), dtype="float32"), expected, dtype="float32")


def test_saved_network_reloads_with_the_same_outputs(tmp_path) -> None:
    model = Residual().double().eval()
    randomize_batch_norm(model)
    x = torch.randn(1, 4, 9, 9, dtype=torch.float64)
    net = from_torch(model, x)
    net.save(str(tmp_path / "residual"))
    loaded = convc.load(str(tmp_path / "residual"))
    assert_matches(run_convc(loaded, x.numpy()), torch_reference(model, x))


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(convc.OptionError, match="torch.nn.Module"):
        from_torch("not a module", torch.randn(1))  # type: ignore[arg-type]
    with pytest.raises(convc.OptionError, match="example_input"):
        from_torch(nn.ReLU(), [1, 2, 3])
    with pytest.raises(convc.OptionError, match="floating-point"):
        from_torch(nn.ReLU().eval(), torch.ones(1, 3, dtype=torch.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an eval-mode model imports without a warning
        from_torch(nn.ReLU().eval(), torch.randn(2, 3))
