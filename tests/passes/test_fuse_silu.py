"""fuse_silu: mul(x, sigmoid(x)) becomes one silu (either operand order), which fuse_epilogue then folds
into the conv; a sigmoid read elsewhere stays; a gate on another value (squeeze-excitation) is left alone;
and efficientnet_b0 through torch.onnx.export + from_onnx gets one silu per torch SiLU module."""
from __future__ import annotations

import io

import numpy as np
import pytest
from pass_check import check_rewrite

import convc
from convc.dsl import Network


def swish_net(swap: bool = False, keep_gate: bool = False) -> Network:
    net = Network("swish", seed=1)
    x = net.input((2, 3, 6, 6))
    y = net.conv2d(x, 8, 3, padding=1, name="conv")
    gate = net.sigmoid(y)
    net.output(net.mul(gate, y) if swap else net.mul(y, gate))
    if keep_gate:
        net.output(gate)
    return net


@pytest.mark.parametrize("swap", [False, True], ids=["x*sigmoid(x)", "sigmoid(x)*x"])
def test_mul_of_x_and_its_sigmoid_becomes_silu_and_fuses_into_the_conv(swap: bool) -> None:
    net = swish_net(swap)
    check_rewrite(net.graph, ["fuse_silu"], expect={"silu": 1, "mul": 0, "sigmoid": 0})
    g, _ = check_rewrite(net.graph, None, expect={"conv2d": 1, "silu": 0, "mul": 0, "sigmoid": 0})
    assert g.node("conv").attrs["epilogue"] == (("silu",),)


def test_a_sigmoid_read_elsewhere_stays() -> None:
    check_rewrite(swish_net(keep_gate=True).graph, ["fuse_silu"], expect={"silu": 1, "mul": 0, "sigmoid": 1})


def test_a_gate_on_another_value_is_not_silu() -> None:
    """Squeeze-excitation: x * sigmoid(f(x)) is a channel gate, not SiLU."""
    net = Network("se", seed=2)
    x = net.input((1, 4, 5, 5))
    s = net.sigmoid(net.conv2d(net.global_avg_pool(x), 4, 1))
    net.output(net.mul(x, s))
    check_rewrite(net.graph, ["fuse_silu"], expect={"silu": 0, "mul": 1, "sigmoid": 1})


@pytest.mark.slow
def test_efficientnet_b0_from_onnx_has_one_silu_per_torch_silu_module() -> None:
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from convc.frontends import from_onnx

    model = torchvision.models.efficientnet_b0(weights=None).eval()
    silu_modules = sum(isinstance(m, torch.nn.SiLU) for m in model.modules())
    x = torch.randn(1, 3, 32, 32)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=13)
    net = from_onnx(buffer.getvalue())
    imported = [n.op for n in net.graph.nodes()]
    assert imported.count("silu") == 0 and imported.count("sigmoid") >= silu_modules  # as exported
    model_o1 = convc.compile(net, backend="numpy", dtype="float32", opt_level=1)
    assert sum(n.op == "silu" for n in model_o1.graph.nodes()) == silu_modules == 49
    model_o2 = convc.compile(net, backend="numpy", dtype="float32")
    fused = sum(step[0] == "silu" for n in model_o2.graph.nodes() for step in n.attrs.get("epilogue", ()))
    standalone = sum(n.op == "silu" for n in model_o2.graph.nodes())
    assert fused + standalone == silu_modules and fused >= 33  # every conv's SiLU, fused
    expected = model(x).detach().numpy()
    out = model_o2.run(x.numpy())[0]
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4)
