"""Triton backend on a CUDA device (marker `gpu`; skipped without one).

- every zoo model at full size, batch 1 and 8, in float32 / float16 / bfloat16, against the float64
  reference (the torch backend in float64 on the same GPU), within the whole-model budget;
- every autotune candidate of every conv kernel family on real layer shapes (ResNet-50's 3x3 and 1x1
  layers, VGG-16's conv3_x) against torch.nn.functional in float64: a miscompiled configuration fails here;
- CUDA graphs and tf32.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import convc
import convc.models
from convc.backends.triton.autotune import Tuner, candidate_configs
from convc.dsl import Network
from convc.numerics import ALGO_FACTOR, budget, rel_err

pytestmark = pytest.mark.gpu

DTYPES = ("float32", "float16", "bfloat16")
CONV_OPS = ("conv1d", "conv2d", "conv3d")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "convc-cache"))


def inputs_for(net: Network, batch: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch,) + n.type.shape[1:]).astype(np.float32) for n in net.graph.inputs]


def reference(net: Network, xs: list[np.ndarray]) -> list[np.ndarray]:
    """float64 on the GPU through the torch backend (no passes: an independent path)."""
    model = convc.compile(net, backend="torch", dtype="float64", device="cuda", opt_level=0, check_numerics=False)
    return [np.asarray(o) for o in model.run(*xs)]


def model_budget(model: Any, dtype: str) -> float:
    """The whole-model budget, loosened by the least accurate conv algorithm the passes chose."""
    factor = max([ALGO_FACTOR.get(n.attrs.get("algo") or "", 1.0) for n in model.graph.nodes(CONV_OPS)] + [1.0])
    return budget(dtype, whole_model=True) * factor


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", convc.models.names())
def test_zoo_model_full_size(name: str, dtype: str) -> None:
    net = convc.models.get(name)
    if net.graph.nodes("batch_norm"):
        net.randomize_batch_norm(seed=1)
    # Untuned (the default configuration) keeps the suite's time bounded; the tests below cover tuning.
    model = convc.compile(net, backend="triton", dtype=dtype, device="cuda", autotune=False)
    for batch in (1, 8):
        xs = inputs_for(net, batch)
        outs = model.run(*xs)  # batch 8 compiles its own variant of the batch-1 module
        ref_net = convc.models.get(name, batch=batch)  # same parameter names and seed: same weights
        ref_net.load_state_dict(net.state_dict())
        refs = reference(ref_net, xs)
        for out, ref in zip(outs, refs):
            err = rel_err(out, ref)
            assert err <= model_budget(model, dtype), f"{name} {dtype} batch {batch}: rel_err {err:.3g}"
    assert model.peak_activation_bytes < model.naive_activation_bytes


# (name, input shape NCHW, out channels, kernel, stride, padding)
LAYERS = [
    ("resnet50.layer1.conv2_3x3", (2, 64, 56, 56), 64, 3, 1, 1),
    ("resnet50.layer3.conv2_3x3", (2, 256, 14, 14), 256, 3, 1, 1),
    ("resnet50.layer4.conv2_3x3_s2", (2, 512, 14, 14), 512, 3, 2, 1),
    ("resnet50.layer1.conv1_1x1", (2, 256, 56, 56), 64, 1, 1, 0),
    ("resnet50.layer1.conv3_1x1", (2, 64, 56, 56), 256, 1, 1, 0),
    ("resnet50.layer3.conv1_1x1", (2, 1024, 14, 14), 256, 1, 1, 0),
    ("vgg16.conv3_1", (1, 128, 56, 56), 256, 3, 1, 1),
    ("vgg16.conv3_2", (1, 256, 56, 56), 256, 3, 1, 1),
]


def layer_net(shape: tuple[int, ...], out: int, kernel: int, stride: int, padding: int, algo: str) -> Network:
    net = Network("layer", seed=3)
    y = net.conv2d(net.input(shape), out, kernel, stride=stride, padding=padding, name="conv")
    net.graph.replace_node(net.graph.node("conv").replace(attrs={**net.graph.node("conv").attrs, "algo": algo}))
    net.output(y)
    return net


def _algos(kernel: int, stride: int) -> list[str]:
    algos = ["implicit_gemm", "im2col"]
    if kernel == 3 and stride == 1:
        algos += ["winograd_2x2", "winograd_4x4"]
    return algos


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("layer", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_every_autotune_configuration_on_real_layers(layer: tuple, dtype: str) -> None:
    _, shape, out, kernel, stride, padding = layer
    for algo in _algos(kernel, stride):
        net = layer_net(shape, out, kernel, stride, padding, algo)
        model = convc.compile(net, backend="triton", dtype=dtype, device="cuda", opt_level=0,
                              check_numerics=False, autotune=False)
        xs = inputs_for(net, shape[0])
        [ref] = reference(net, xs)
        variant = model.variants[(shape,)]
        tunable = [i for i, launch in enumerate(variant.launches) if launch.family]
        assert tunable, algo
        failures = []
        for i in tunable:
            launch = variant.launches[i]
            for cfg in candidate_configs(launch.family, launch.tune_key[:3]):
                variant.launches[i] = launch.with_config(cfg)
                [got] = model.run(*xs)
                err = rel_err(got, ref)
                if err > budget(dtype, algo):
                    failures.append(f"{algo} {launch.name} {cfg}: {err:.3g}")
            variant.launches[i] = launch
        assert not failures, "\n".join(failures)
        # The tuner, which also checks every configuration against the reference one, picks a valid one.
        tuned = convc.compile(net, backend="triton", dtype=dtype, device="cuda", opt_level=0,
                              check_numerics=False, autotune=True)
        [got] = tuned.run(*xs)
        assert rel_err(got, ref) <= budget(dtype, algo)


def test_direct_conv_configurations_on_a_depthwise_layer() -> None:
    net = Network("dw", seed=4)
    y = net.conv2d(net.input((4, 96, 56, 56)), 96, 3, padding=1, groups=96, name="conv")
    net.output(y)
    model = convc.compile(net, backend="triton", dtype="float16", device="cuda", opt_level=0,
                          check_numerics=False, autotune=False)
    xs = inputs_for(net, 4)
    [ref] = reference(net, xs)
    variant = model.variants[((4, 96, 56, 56),)]
    [launch] = variant.launches
    assert launch.family == "conv_direct"
    for cfg in candidate_configs("conv_direct", launch.tune_key[:3]):
        variant.launches[0] = launch.with_config(cfg)
        assert rel_err(model.run(*xs)[0], ref) <= budget("float16"), cfg


def test_cuda_graphs_match_eager_launches() -> None:
    net = convc.models.get("resnet18")
    net.randomize_batch_norm(seed=1)
    eager = convc.compile(net, backend="triton", dtype="float16", device="cuda", autotune=False)
    graphed = convc.compile(net, backend="triton", dtype="float16", device="cuda", autotune=False,
                            cuda_graphs=True)
    for seed in (0, 1):
        x = torch.from_numpy(inputs_for(net, 1, seed)[0]).half().cuda()
        torch.testing.assert_close(graphed(x).clone(), eager(x), rtol=0, atol=0)


def test_tf32_is_within_its_budget() -> None:
    net = layer_net((2, 256, 14, 14), 256, 3, 1, 1, "implicit_gemm")
    xs = inputs_for(net, 2)
    [ref] = reference(net, xs)
    model = convc.compile(net, backend="triton", dtype="float32", device="cuda", opt_level=0,
                          check_numerics=False, autotune=False, tf32=True)
    assert rel_err(model.run(*xs)[0], ref) <= budget("tf32")


def test_tuner_rejects_nothing_on_a_healthy_layer(tmp_path: Any) -> None:
    net = layer_net((2, 256, 14, 14), 256, 3, 1, 1, "implicit_gemm")
    model = convc.compile(net, backend="triton", dtype="float16", device="cuda", opt_level=0,
                          check_numerics=False, autotune=False)
    [launch] = model.launches
    tuner = Tuner(enabled=True, path=tmp_path / "t.json")
    tuner.tune(launch, "float16", candidate_configs(launch.family, launch.tune_key[:3]))
    assert not tuner.rejected, tuner.rejected
