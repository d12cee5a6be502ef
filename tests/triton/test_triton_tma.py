"""Weights and 1x1 activations through TMA tensor descriptors (backends/triton/tma.py), run by the CPU
interpreter (it executes `tl.make_tensor_descriptor` loads, zero-filling past the shape as the copy engine
does) against torch in float64: the plain GEMM (1x1 convs, grouped 1x1 convs, linear, the products of
Winograd and im2col), implicit GEMM's 3-D weight descriptor with a partial channel block per kernel
position, the flat RGB gather, split-K, a fused bias + residual + relu epilogue, fp16 / bf16 / fp32;
the alignment rules that choose TMA, the tuner's twins and the allocator."""
from __future__ import annotations

import contextvars
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from triton_check import compile_triton, fuse

from convc.backends.triton import autotune, split_k
from convc.backends.triton.tma import _aligned_block
from convc.backends.triton.launch import Launch
from convc.backends.triton.tma import TMA_ACTIVATIONS, TMA_WEIGHTS, allowed_tma, ensure_allocator, tma_modes
from convc.dsl import Network
from convc.numerics import budget, rel_err

BOTH = TMA_WEIGHTS | TMA_ACTIVATIONS
BENCH = Path(__file__).resolve().parents[2] / "bench"
TILE = dict(BLOCK_M=32, BLOCK_N=16, BLOCK_K=16, num_warps=4, num_stages=2)  # several programs and K steps


def conv_block(shape: tuple[int, ...], out: int, kernel: int, stride: int = 1, padding: int = 0,
               seed: int = 3, groups: int = 1, algo: str = "implicit_gemm") -> Network:
    """relu(conv(x) + bias + r), the add and relu fused into the conv as fuse_epilogue would."""
    net = Network("tma", seed=seed)
    x = net.input(shape)
    oh = (shape[2] + 2 * padding - kernel) // stride + 1
    ow = (shape[3] + 2 * padding - kernel) // stride + 1
    r = net.input((shape[0], out, oh, ow), name="r")
    y = net.conv2d(x, out, kernel, stride=stride, padding=padding, groups=groups, name="c")
    graph = net.graph
    graph.replace_node(graph.node("c").replace(attrs={**graph.node("c").attrs, "algo": algo}))
    net.output(y)
    fuse(net, y, (("add",), ("relu",)), [r])
    return net


def torch_block(net: Network, x: np.ndarray, r: np.ndarray, stride: int, padding: int, groups: int = 1
                ) -> np.ndarray:
    params = net.graph.params
    w = torch.from_numpy(np.asarray(params["c.weight"], np.float64))
    b = torch.from_numpy(np.asarray(params["c.bias"], np.float64))
    y = torch.nn.functional.conv2d(torch.from_numpy(x).double(), w, b, stride=stride, padding=padding,
                                   groups=groups)
    return torch.relu(y + torch.from_numpy(r).double()).numpy()


def with_tma(model: Any, request: int, tile: dict[str, Any] | None = TILE) -> list[Launch]:
    """Sets every tunable launch of the model to `tile` with TMA bits `request` (cut to what it allows)."""
    variant = next(iter(model.variants.values()))
    variant.launches = [launch.with_config(allowed_tma({**(tile or launch.config), "TMA": request},
                                                       launch.tma))
                        if launch.name in ("gemm_kernel", "conv_implicit_gemm_kernel") else launch
                        for launch in variant.launches]
    return [launch for launch in variant.launches if "TMA" in launch.config]


def run_block(dtype: str, shape: tuple[int, ...], out: int, kernel: int, stride: int = 1, padding: int = 0,
              request: int = BOTH, groups: int = 1, algo: str = "implicit_gemm"
              ) -> tuple[float, list[Launch]]:
    net = conv_block(shape, out, kernel, stride, padding, groups=groups, algo=algo)
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype(np.float32)
    r = rng.normal(size=net.graph.node("r").type.shape).astype(np.float32)
    model = compile_triton(net, dtype)
    launches = with_tma(model, request)
    got = model.run(x, r)[0]
    return rel_err(got, torch_block(net, x, r, stride, padding, groups)), launches


@settings(max_examples=6, deadline=None)
@given(dtype=st.sampled_from(["float16", "float32"]), images=st.integers(1, 2), hw=st.integers(3, 6),
       channels=st.sampled_from([16, 24, 40]), out=st.sampled_from([16, 24, 40]))
def test_unit_window_gemm_reads_both_operands_through_descriptors(dtype: str, images: int, hw: int,
                                                                  channels: int, out: int) -> None:
    # Ragged edges everywhere: M = images * hw * hw pixels against BLOCK_M 32; K and N against 16.
    err, [launch] = run_block(dtype, (images, channels, hw, hw + 1), out, 1)
    assert launch.name == "gemm_kernel" and launch.config["TMA"] == BOTH
    assert err <= budget(dtype), err


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("stride", [1, 2])
def test_implicit_gemm_weight_descriptor_stops_at_each_positions_channels(dtype: str, stride: int) -> None:
    # 40 channels: the third BLOCK_K step of every kernel position reads 8 channels and 8 rows past them,
    # which the 3-D descriptor zero-fills instead of reading the next position's weights.
    err, [launch] = run_block(dtype, (2, 40, 7, 6), 24, 3, stride, 1)
    assert launch.name == "conv_implicit_gemm_kernel" and launch.config["TMA"] == TMA_WEIGHTS
    assert not launch.meta["GATHER_K"]
    assert err <= budget(dtype), err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_grouped_1x1_conv_points_each_groups_descriptors_at_its_batch_entry(dtype: str) -> None:
    # Two groups of 24 channels: batch entry g's A starts 24 channels (48 bytes) into each row.
    err, [launch] = run_block(dtype, (2, 48, 5, 6), 32, 1, groups=2)
    assert launch.name == "gemm_kernel" and launch.config["TMA"] == BOTH and launch.grid[1] == 2
    assert err <= budget(dtype), err


@pytest.mark.parametrize("algo", ["winograd_2x2", "im2col"])
def test_batched_products_of_other_algorithms_through_descriptors(algo: str) -> None:
    err, launches = run_block("float16", (2, 32, 6, 6), 24, 3, padding=1, algo=algo)
    [product] = [launch for launch in launches if launch.name == "gemm_kernel"]
    assert product.config["TMA"] == BOTH
    assert err <= budget("float16", algo), err


def test_rgb_gather_reads_flat_weights_through_a_descriptor() -> None:
    err, [launch] = run_block("float16", (2, 3, 11, 9), 16, 5, 2, 2)
    assert launch.meta["GATHER_K"] and launch.config["TMA"] == TMA_WEIGHTS
    assert err <= budget("float16"), err


@pytest.mark.parametrize("kernel", [3, 1])
def test_split_k_with_descriptors(monkeypatch: pytest.MonkeyPatch, kernel: int) -> None:
    monkeypatch.setattr(split_k, "ENABLED", True)
    monkeypatch.setattr(split_k, "SMS", 4)
    monkeypatch.setattr(autotune, "INTERPRET", False)  # GPU tiles and their default TMA request
    channels = 64 if kernel == 3 else 512
    net = conv_block((1, channels, 6, 6), 32, kernel, padding=kernel // 2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, channels, 6, 6)).astype(np.float32)
    r = rng.normal(size=(1, 32, 6, 6)).astype(np.float32)
    model = compile_triton(net, "float16")
    main = model.launches[0]
    assert main.meta["SPLIT_K"] > 1 and model.launches[1].name == "split_k_reduce_kernel"
    assert main.config["TMA"] == (BOTH if kernel == 1 else TMA_WEIGHTS)  # the default asks for TMA
    err = rel_err(model.run(x, r)[0], torch_block(net, x, r, 1, kernel // 2))
    assert err <= budget("float16"), err


def test_linear_layer_through_descriptors() -> None:
    net = Network("fc", seed=5)
    y = net.linear(net.input((5, 72)), 40, name="fc")
    net.output(net.relu(y))
    x = np.random.default_rng(3).normal(size=(5, 72)).astype(np.float32)
    model = compile_triton(net, "float16")
    [launch] = with_tma(model, BOTH)
    assert launch.config["TMA"] == BOTH
    params = net.graph.params
    w = torch.from_numpy(np.asarray(params["fc.weight"], np.float64))
    b = torch.from_numpy(np.asarray(params["fc.bias"], np.float64))
    ref = torch.relu(torch.from_numpy(x).double() @ w.T + b)
    assert rel_err(model.run(x)[0], ref.numpy()) <= budget("float16")


def test_misaligned_operands_keep_the_pointer_loads() -> None:
    # fp16 rows of 20 channels are 40 bytes: neither the weights [K, 20] nor A with ld 20 can be TMA'd.
    err, [launch] = run_block("float16", (2, 20, 4, 5), 20, 1)
    assert launch.tma == 0 and launch.config["TMA"] == 0
    assert err <= budget("float16")
    # 16 output channels but 20 input channels: weights yes, activations no.
    _, [launch] = run_block("float16", (2, 20, 4, 5), 16, 1)
    assert launch.tma == TMA_WEIGHTS and launch.config["TMA"] == TMA_WEIGHTS


def test_alignment_rules() -> None:
    storage = torch.zeros(4096, dtype=torch.float16)
    assert tma_modes((storage, [64]), (storage, [64])) == BOTH
    assert tma_modes((storage[4:], [64]), (storage, [64])) == 0  # base 8 bytes off
    assert tma_modes((storage, [64]), (storage[8:], [64])) == BOTH  # 16 bytes off: aligned
    assert tma_modes((storage, [64]), (storage, [64, 12])) == TMA_WEIGHTS  # a batch stride of 24 bytes
    assert tma_modes((storage, [36]), (storage, [64])) == 0  # activations alone never
    assert tma_modes((storage.float(), [36]), None) == TMA_WEIGHTS  # 144-byte fp32 rows
    meta = torch.empty(4096, dtype=torch.float16, device="meta")
    assert tma_modes((meta[8:], [64])) == TMA_WEIGHTS and tma_modes((meta[1:], [64])) == 0
    assert allowed_tma({"BLOCK_M": 64}, TMA_WEIGHTS) == {"BLOCK_M": 64, "TMA": 0}
    assert allowed_tma({"TMA": BOTH}, TMA_WEIGHTS)["TMA"] == TMA_WEIGHTS


def test_tuner_candidates_pair_each_tile_with_its_tma_twin() -> None:
    plain = autotune.candidate_configs("gemm", (50176, 256, 64), "float16")
    twins = autotune.candidate_configs("gemm", (50176, 256, 64), "float16", False, BOTH)
    assert twins[0] == plain[0] and twins[0]["TMA"] == 0  # the reference stays the pointer path
    assert twins[1::2] == [{**c, "TMA": BOTH} for c in plain] and twins[0::2] == plain
    assert autotune.candidate_configs("gemm", (50176, 256, 64), "float32", False, BOTH) == \
        autotune.candidate_configs("gemm", (50176, 256, 64), "float32")  # FMA tiles take no twins
    entry = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3}
    for tma, ok in ((0, True), (1, True), (3, True), (2, False), (5, False), (True, False)):
        assert autotune._valid_entry("gemm", {"config": {**entry, "TMA": tma}}) is ok, tma
    assert autotune._valid_entry("gemm", {"config": entry})  # no TMA key: off
    assert not autotune._valid_entry("conv_direct", {"config": {"BLOCK_M": 64, "BLOCK_N": 16, "TMA": 1,
                                                                "num_warps": 4, "num_stages": 1}})


def test_gpu_default_asks_for_tma_on_tensor_core_dtypes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autotune, "INTERPRET", False)
    assert autotune.default_config("gemm", (4096, 256, 256), "float16")["TMA"] == BOTH
    assert autotune.default_config("gemm", (4096, 256, 256), "float32")["TMA"] == 0
    assert "TMA" not in autotune.default_config("conv_direct", (4096, 16, 9), "float16")


def test_allocator_is_installed_once_and_a_users_is_kept() -> None:
    from triton.runtime import _allocation

    def fresh() -> Any:
        ensure_allocator()
        return _allocation._allocator.get()

    installed = contextvars.Context().run(fresh)  # a new context starts with Triton's null allocator
    assert not isinstance(installed, _allocation.NullAllocator)

    def mine(size: int, alignment: int, stream: Any) -> torch.Tensor:
        return torch.empty(size, dtype=torch.int8)

    def users() -> Any:
        import triton

        triton.set_allocator(mine)
        ensure_allocator()
        return _allocation._allocator.get()

    assert contextvars.Context().run(users) is mine


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(size=st.integers(1, 5000), alignment=st.sampled_from([1, 16, 64, 128, 1024, 4096]))
def test_scratch_blocks_start_aligned_and_hold_the_size(size: int, alignment: int) -> None:
    """The descriptor scratch honours Triton's alignment request whatever the allocator's own alignment
    (torch's CUDA blocks start 512-byte aligned; a 4 KB request gets a padded block and an offset view)."""
    block = _aligned_block(size, alignment, torch.device("cpu"))
    assert block.numel() == size and block.dtype == torch.int8 and block.data_ptr() % alignment == 0


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # masked rows x inf
@pytest.mark.parametrize("request_bits", [0, TMA_WEIGHTS])
def test_an_infinite_weight_stays_infinite(request_bits: int) -> None:
    # With positive inputs and no padding torch gives +inf in the output channel of an infinite weight.
    # A flat [positions * 40, O] weight descriptor would also read that weight in the previous position's
    # partial channel step, times a masked (zero) input: 0 * inf = NaN. The 3-D descriptor never does.
    net = conv_block((1, 40, 5, 5), 16, 3)
    net.graph.params["c.weight"][3, 0, 1, 1] = np.inf
    rng = np.random.default_rng(4)
    x = np.abs(rng.normal(size=(1, 40, 5, 5))).astype(np.float32) + 0.1
    r = rng.normal(size=(1, 16, 3, 3)).astype(np.float32)
    model = compile_triton(net, "float16")
    [launch] = with_tma(model, request_bits)
    assert launch.config["TMA"] == request_bits
    got, ref = model.run(x, r)[0].astype(np.float64), torch_block(net, x, r, 1, 0)
    assert np.isposinf(ref[:, 3]).all() and np.isposinf(got[:, 3]).all()
    finite = np.arange(16) != 3
    assert rel_err(got[:, finite], ref[:, finite]) <= budget("float16")


def test_gpu_smoke_times_the_pointer_twin_of_a_tma_layer() -> None:
    spec = importlib.util.spec_from_file_location("gpu_smoke", BENCH / "gpu_smoke.py")
    assert spec is not None and spec.loader is not None
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    net = Network("pool", seed=2)
    net.output(net.max_pool2d(net.conv2d(net.input((2, 16, 6, 6)), 24, 1, name="c"), 2))
    x = np.random.default_rng(5).normal(size=(2, 16, 6, 6)).astype(np.float32)
    model = compile_triton(net, "float16")
    [launch] = with_tma(model, BOTH)
    variant = next(iter(model.variants.values()))
    before = list(variant.launches)
    assert len(before) == 2  # the pool takes no TMA entry and must keep its configuration
    params = net.graph.params
    w, b = (torch.from_numpy(np.asarray(params[f"c.{k}"], np.float64)) for k in ("weight", "bias"))
    conv = torch.nn.functional.conv2d(torch.from_numpy(x).double(), w, b)
    ref = torch.nn.functional.max_pool2d(conv, 2).numpy()
    assert rel_err(model.run(x)[0], ref) <= budget("float16")
    row = smoke.tma_ab(model, torch.from_numpy(x).half(), ref, False, 1)
    assert row["tma"] == BOTH and row["rel_err_no_tma"] <= budget("float16") and row["triton_ms_no_tma"] > 0
    assert variant.launches == before  # restored


@pytest.mark.parametrize("kernel", [1, 3])
def test_descriptors_with_64_bit_offsets(monkeypatch: pytest.MonkeyPatch, kernel: int) -> None:
    from convc.backends.triton import conv_implicit_gemm, gemm

    monkeypatch.setattr(gemm, "WIDE_EXTENT", 64)  # every extent counts as past 2**31
    monkeypatch.setattr(conv_implicit_gemm, "_INT32", 64)
    err, [launch] = run_block("float16", (2, 32, 5, 4), 24, kernel, padding=kernel // 2)
    assert launch.meta["WIDE"] and launch.config["TMA"] == (BOTH if kernel == 1 else TMA_WEIGHTS)
    assert err <= budget("float16"), err
