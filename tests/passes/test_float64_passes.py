"""Float64 is float64: parameters a pass computes (folded batch norms, folded constants) keep float64
precision when compiling in float64, so -O1 and -O2 agree with -O0 to the float64 whole-model budget
(1e-9) even for networks whose weights are float32 (every DSL network, every float32 torch import).
And conv/linear -> batch_norm -> batch_norm folds both (it used to crash fold_bn)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import convc
from convc.cli import main
from convc.compiler import optimize
from convc.dsl import Network
from convc.numerics import budget, rel_err

FLOAT64 = budget("float64", whole_model=True)


def outputs(net: Network, opt_level: int, x: np.ndarray, backend: str = "numpy") -> np.ndarray:
    return convc.compile(net, backend=backend, dtype="float64", opt_level=opt_level).run(x)[0]


def assert_levels_agree(net: Network, backends: tuple[str, ...] = ("numpy",)) -> None:
    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape)
    reference = outputs(net, 0, x)
    for backend in backends:
        for level in (1, 2):
            err = rel_err(outputs(net, level, x, backend), reference)
            assert err <= FLOAT64, f"{backend} -O{level}: {err:.3g} from -O0 (float64 budget {FLOAT64:.0e})"


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn"])
def test_zoo_bn_networks_in_float64_agree_across_levels(name: str) -> None:
    net = convc.models.get(name, batch=1, input_size=32, num_classes=10)
    net.randomize_batch_norm(seed=1)
    assert_levels_agree(net, ("numpy", "torch"))


def random_bn_network(seed: int) -> Network:
    """conv/linear layers with batch norms after some of them, random shapes, float32 weights."""
    rng = np.random.default_rng(seed)
    net = Network(f"bn{seed}", seed=seed)
    y = net.input((2, int(rng.integers(1, 5)), 9, 9))
    for i in range(int(rng.integers(2, 5))):
        y = net.conv2d(y, int(rng.integers(2, 9)), int(rng.choice([1, 3])), padding=1, bias=bool(rng.random() < .5),
                       name=f"conv{i}")
        if rng.random() < 0.8:
            y = net.batch_norm(y, eps=float(rng.choice([1e-5, 1e-3])), name=f"bn{i}")
        y = net.relu(y) if rng.random() < 0.7 else y
        if rng.random() < 0.4:  # a BN with no layer right before it: a scale_shift
            y = net.batch_norm(net.max_pool2d(y, 3, stride=1, padding=1), name=f"pool_bn{i}")
    y = net.linear(net.flatten(y), 7, name="fc")
    net.output(net.batch_norm(y, name="fc_bn"))
    net.randomize_batch_norm(seed=seed)
    return net


@pytest.mark.parametrize("seed", range(6))
def test_random_bn_networks_in_float64_agree_across_levels(seed: int) -> None:
    net = random_bn_network(seed)
    assert all(a.dtype == np.float32 for a in net.graph.params.values())
    assert_levels_agree(net)


def test_winograd_filters_transformed_at_compile_time_keep_float64() -> None:
    net = random_bn_network(1)
    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape)
    pins = {n.name: "winograd_4x4" for n in net.graph.nodes("conv2d") if n.attrs["kernel"] == (3, 3)}
    assert pins
    model = convc.compile(net, backend="numpy", dtype="float64", opt_level=2, algo=pins)
    assert rel_err(model.run(x)[0], outputs(net, 0, x)) <= FLOAT64


def test_folded_parameters_are_float64_when_compiling_float64_and_float32_otherwise() -> None:
    net = random_bn_network(0)
    g64, _, _ = optimize(net, dtype="float64", opt_level=1)
    g32, _, _ = optimize(net, dtype="float32", opt_level=1)
    assert not g64.nodes("batch_norm") and not g32.nodes("batch_norm") and g64.nodes("scale_shift")
    assert g64.params["conv0.weight"].dtype == np.float64
    assert g32.params["conv0.weight"].dtype == np.float32
    # Nodes keep the network's dtype (operand types still match); only the arrays carry float64.
    assert all(g64.params[n.name].dtype == np.float64 for n in g64.nodes("param") if n.name not in net.graph.params)
    assert {n.type.dtype for n in g64.nodes()} == {"float32"}


def test_float32_torch_import_compiled_in_float64_matches_torch_float64() -> None:
    """A torchvision-style ResNet-18 imported in float32, compiled in float64: every level agrees with
    torch's own float64 eager run to 1e-9."""
    from torch_zoo import randomize_batch_norm, resnet

    module = resnet("resnet18", num_classes=10).eval()
    randomize_batch_norm(module, seed=3)
    net = convc.from_torch(module, torch.randn(1, 3, 32, 32))
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32))
    with torch.no_grad():
        expected = module.double()(torch.from_numpy(x)).numpy()
    for level in (0, 1, 2):
        err = rel_err(outputs(net, level, x), expected)
        assert err <= FLOAT64, f"-O{level}: {err:.3g} from torch float64"


def bn_chain_module(linear: bool) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(48, 6), nn.BatchNorm1d(6), nn.BatchNorm1d(6)] if linear \
        else [nn.Conv2d(3, 5, 3, bias=False), nn.BatchNorm2d(5), nn.BatchNorm2d(5), nn.ReLU()]
    module = nn.Sequential(*layers).eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                for t, lo, span in ((m.weight, 0.5, 1.0), (m.bias, -0.3, 0.6), (m.running_mean, -0.3, 0.6),
                                    (m.running_var, 0.5, 1.5)):
                    t.copy_(torch.rand(t.shape, generator=gen) * span + lo)
    return module


@pytest.mark.parametrize("linear", [False, True])
def test_layer_then_two_batch_norms_fold_both_from_torch(linear: bool) -> None:
    module = bn_chain_module(linear)
    net = convc.from_torch(module, torch.randn(2, 3, 4, 4))
    g, _, _ = optimize(net, dtype="float64", opt_level=1)
    assert not g.nodes("batch_norm") and not g.nodes("scale_shift")
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4))
    with torch.no_grad():
        expected = module.double()(torch.from_numpy(x)).numpy()
    for backend in ("numpy", "torch"):
        for level in (1, 2):
            assert rel_err(outputs(net, level, x, backend), expected) <= FLOAT64


def test_layer_then_two_batch_norms_fold_both_in_the_dsl() -> None:
    net = Network("bnbn", seed=0)
    x = net.input((1, 3, 8, 8))
    y = net.batch_norm(net.batch_norm(net.conv2d(x, 4, 3, name="conv"), name="bn1"), name="bn2")
    net.output(net.relu(net.batch_norm(y, name="bn3")))
    net.randomize_batch_norm(seed=2)
    g, _, _ = optimize(net, dtype="float64", opt_level=1)
    assert [n.op for n in g.nodes() if n.op not in ("param", "input")] == ["conv2d", "relu"]
    assert_levels_agree(net)


def test_layer_then_two_batch_norms_through_the_cli(tmp_path: Path) -> None:
    factory = tmp_path / "chain.py"
    here = str(Path(__file__).parent)
    factory.write_text(f"import sys\nsys.path.insert(0, {here!r})\nfrom test_float64_passes import bn_chain_module\n"
                       "\n\ndef make():\n    return bn_chain_module(False)\n")
    assert main(["check", f"{factory}:make", "--input", "3,6,6", "--backends", "numpy,torch",
                 "--dtype", "float64", "-O2"]) == 0


def test_folded_constants_keep_float64_when_compiling_float64() -> None:
    """fold_constants on float32 parameters: float64 compiles store the float64 value itself."""
    from test_pass_cleanup import constant_graph

    g, p = constant_graph()
    out, _, _ = optimize(g, dtype="float64", passes=["fold_constants"])
    folded = out.params[out.node("sum").inputs[1]]
    assert folded.dtype == np.float64
    stored = p.astype(np.float32).astype(np.float64)  # the float32 parameter, exactly
    expected = np.tanh(1 / (1 + np.exp(-stored)))
    np.testing.assert_allclose(folded, expected, rtol=1e-14)
