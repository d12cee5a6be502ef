"""The implicit-GEMM conv kernel's variants on the CPU interpreter, each against torch in float64:
every tile configuration the tuner may pick (fp16 tensor-core, fp32 and flat-gather lists), split-K
with its reduction, the flat (position, channel) gather of an RGB first layer, 64-bit offsets, and
unit-window convs lowered to the plain GEMM without a copy."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from triton_check import compile_triton, random_inputs

from convc.backends.triton import autotune, conv_implicit_gemm, split_k
from convc.dsl import Network
from convc.numerics import budget, rel_err


def conv_net(shape: tuple[int, ...], out: int, kernel: int, algo: str = "implicit_gemm", **kw: Any) -> Network:
    net = Network("ig", seed=3)
    x = net.input(shape)
    y = net.conv2d(x, out, kernel, name="c", **kw)
    net.graph.replace_node(net.graph.node("c").replace(attrs={**net.graph.node("c").attrs, "algo": algo}))
    net.output(net.relu(y))
    return net


def torch_reference(net: Network, x: np.ndarray, **kw: Any) -> np.ndarray:
    """relu(conv2d(x)) by torch in float64 from the graph's own parameters."""
    g = net.graph
    w = torch.from_numpy(np.asarray(g.params["c.weight"], np.float64))
    b = torch.from_numpy(np.asarray(g.params["c.bias"], np.float64))
    y = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)), w, b, **kw)
    return torch.relu(y).numpy()


def run_with(model: Any, x: np.ndarray, config: dict[str, Any] | None = None) -> np.ndarray:
    variant = next(iter(model.variants.values()))
    if config is not None:
        variant.launches = [launch.with_config(config) if launch.name == "conv_implicit_gemm_kernel" else launch
                            for launch in variant.launches]
    return model.run(x)[0]


def _configs(tiles: list[tuple[int, int, int, int, int]]) -> list[dict[str, Any]]:
    return [dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s) for m, n, k, w, s in tiles]


@pytest.mark.parametrize("dtype, tiles", [("float16", autotune._TENSOR_CORE_TILES),
                                          ("float32", autotune._FP32_TILES)])
def test_every_tile_configuration_computes_the_conv(dtype: str, tiles: list[tuple[int, ...]]) -> None:
    # 40 channels: the last BLOCK_K step of each kernel position is partial; 2x9x7 pixels, 24 outputs.
    net = conv_net((2, 40, 9, 7), 24, 3, padding=1)
    [x] = random_inputs(net)
    ref = torch_reference(net, x, padding=1)
    model = compile_triton(net, dtype)
    for cfg in _configs(tiles):  # type: ignore[arg-type]
        err = rel_err(run_with(model, x, cfg), ref)
        assert err <= budget(dtype), (cfg, err)


def test_rgb_first_layer_gathers_flat_k_in_every_configuration() -> None:
    net = conv_net((2, 3, 15, 13), 16, 5, stride=2, padding=2)
    [x] = random_inputs(net)
    ref = torch_reference(net, x, stride=2, padding=2)
    model = compile_triton(net, "float16")
    [launch] = [launch for launch in model.launches if launch.name == "conv_implicit_gemm_kernel"]
    assert launch.meta["GATHER_K"] is True
    for cfg in _configs(autotune._GATHER_TILES):
        assert rel_err(run_with(model, x, cfg), ref) <= budget("float16"), cfg


@pytest.mark.parametrize("sms", [4, 100])
@pytest.mark.parametrize("kernel", [3, 1])
def test_split_k_partial_sums_and_reduction(monkeypatch: pytest.MonkeyPatch, sms: int, kernel: int) -> None:
    monkeypatch.setattr(split_k, "ENABLED", True)
    monkeypatch.setattr(split_k, "SMS", sms)
    monkeypatch.setattr(autotune, "INTERPRET", False)  # GPU tile sizes, so the grid is small
    channels = 64 if kernel == 3 else 512  # enough K steps to split
    net = conv_net((1, channels, 6, 6), 32, kernel, padding=kernel // 2)
    [x] = random_inputs(net)
    model = compile_triton(net, "float32")
    names = [launch.name for launch in model.launches]
    main = model.launches[0]
    assert names[:2] == [main.name, "split_k_reduce_kernel"]  # then the unfused relu
    assert main.name == ("conv_implicit_gemm_kernel" if kernel == 3 else "gemm_kernel")
    steps = kernel * kernel * -(-channels // main.config["BLOCK_K"])  # kernel positions x channel blocks
    assert main.meta["SPLIT_K"] > 1 and main.meta["SPLIT_K"] * split_k.MIN_STEPS_PER_SPLIT <= steps
    ref = torch_reference(net, x, padding=kernel // 2)
    assert rel_err(model.run(x)[0], ref) <= budget("float32")


def test_64_bit_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_implicit_gemm, "_INT32", 64)  # every extent counts as past 2**31
    net = conv_net((2, 16, 7, 7), 16, 3, padding=1)
    [x] = random_inputs(net)
    model = compile_triton(net, "float32")
    [launch] = [launch for launch in model.launches if launch.name == "conv_implicit_gemm_kernel"]
    assert launch.meta["WIDE"] is True
    assert rel_err(model.run(x)[0], torch_reference(net, x, padding=1)) <= budget("float32")


@pytest.mark.parametrize("algo", ["implicit_gemm", "im2col"])
def test_unit_window_conv_is_one_gemm_on_the_input(algo: str) -> None:
    net = conv_net((2, 24, 5, 6), 40, 1, algo=algo)
    [x] = random_inputs(net)
    model = compile_triton(net, "float32")
    convs = [launch.name for launch in model.launches if launch.node == "c"]
    assert convs == ["gemm_kernel"]  # no im2col copy, no gather
    assert model.peak_activation_bytes <= 4 * (2 * 24 * 30 + 2 * 40 * 30) * 2  # no column scratch
    assert rel_err(model.run(x)[0], torch_reference(net, x)) <= budget("float32")


def test_wide_offsets_are_chosen_by_extent() -> None:
    from convc.backends.triton.geometry import ConvGeometry
    from convc.backends.triton.launch import View

    geo = ConvGeometry(n=256, c=64, d=1, h=224, w=224, o=64, od=1, oh=224, ow=224, kernel=(1, 3, 3),
                       stride=(1, 1, 1), dilation=(1, 1, 1), pad_lo=(0, 1, 1), groups=1, ndim=2)
    small = View(torch.empty(0), 0, 1000, 64, 64)
    big = View(torch.empty(0), 0, 256 * 224 * 224, 64, 64)  # 822 M elements: fits int32
    assert not conv_implicit_gemm.wide_offsets(geo, small, small)
    assert not conv_implicit_gemm.wide_offsets(geo, big, big)
    huge = View(torch.empty(0), 0, 2 * 256 * 224 * 224, 128, 128)  # 6.6 G elements
    assert conv_implicit_gemm.wide_offsets(geo, huge, small)
