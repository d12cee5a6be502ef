"""TMA tensor descriptors on a CUDA device (marker `gpu`; skipped without one): the default fp16 plan of
ResNet-50's 1x1 and 3x3 layers reads its weights (and the 1x1 activations) through descriptors on a
Hopper GPU, and every TMA twin the tuner may pick matches torch.nn.functional in float64; a launch from a
fresh thread (no Triton allocator set yet) and misaligned channel counts still run correctly, and a module
reading through descriptors is captured into a CUDA graph (torch.cuda.graph around an eager module, and
convc's own cuda_graphs=True) and replayed with new inputs, its descriptor scratch drawn during capture."""
from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
import triton
from test_triton_gpu import inputs_for, layer_net, reference

import convc
from convc.backends.triton.aot import compile_launch, kernel_stats
from convc.backends.triton import tma
from convc.backends.triton.autotune import candidate_configs
from convc.backends.triton.targets import local_target
from convc.backends.triton.tma import TMA_ACTIVATIONS, TMA_WEIGHTS
from convc.dsl import Network
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.gpu
GEMM_KERNELS = ("gemm_kernel", "conv_implicit_gemm_kernel")

# (name, input shape NCHW, out channels, kernel, stride, padding)
LAYERS = [
    ("resnet50.layer1.conv2_3x3", (4, 64, 56, 56), 64, 3, 1, 1),
    ("resnet50.layer4.conv2_3x3_s2", (4, 512, 14, 14), 512, 3, 2, 1),
    ("resnet50.layer1.conv3_1x1", (4, 64, 56, 56), 256, 1, 1, 0),
    ("resnet50.layer3.conv1_1x1", (4, 1024, 14, 14), 256, 1, 1, 0),
    ("resnet50.conv1_7x7_rgb", (4, 3, 224, 224), 64, 7, 2, 3),
]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "convc-cache"))


def compiled(layer: tuple[Any, ...]) -> tuple[Any, list[Any], Any]:
    _, shape, out, kernel, stride, padding = layer
    net = layer_net(shape, out, kernel, stride, padding, "implicit_gemm")
    model = convc.compile(net, backend="triton", dtype="float16", device="cuda", opt_level=0,
                          check_numerics=False, autotune=False)
    xs = inputs_for(net, shape[0])
    [ref] = reference(net, xs)
    return model, xs, ref


@pytest.mark.parametrize("layer", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_default_plan_reads_through_descriptors_and_matches_torch(layer: tuple[Any, ...]) -> None:
    model, xs, ref = compiled(layer)
    main = next(launch for launch in model.launches if launch.name in GEMM_KERNELS)
    unit = layer[3] == 1
    assert main.tma == (TMA_WEIGHTS | TMA_ACTIVATIONS if unit else TMA_WEIGHTS)
    assert main.config["TMA"] == main.tma  # the fp16 default asks for every bit the alignment allows
    [got] = model.run(*xs)
    assert rel_err(got, ref) <= budget("float16")
    target = local_target()
    if target is not None and target.arch >= 90:  # the kernel compiled for this GPU holds bulk tensor copies
        assert kernel_stats(compile_launch(main, target)).tma > 0


@pytest.mark.parametrize("layer", LAYERS[::2], ids=[layer[0] for layer in LAYERS[::2]])
def test_every_tma_twin_matches_torch(layer: tuple[Any, ...]) -> None:
    model, xs, ref = compiled(layer)
    variant = next(iter(model.variants.values()))
    i, launch = next((i, launch) for i, launch in enumerate(variant.launches) if launch.name in GEMM_KERNELS)
    family = "gemm" if launch.name == "gemm_kernel" else "conv_implicit_gemm"
    twins = [cfg for cfg in candidate_configs(family, launch.tune_key[:3], "float16",
                                              bool(launch.meta.get("GATHER_K")), launch.tma) if cfg["TMA"]]
    assert twins
    failures = []
    for cfg in twins:
        variant.launches[i] = launch.with_config(cfg)
        err = rel_err(model.run(*xs)[0], ref)
        if err > budget("float16"):
            failures.append(f"{cfg}: {err:.3g}")
    assert not failures, "\n".join(failures)


def test_a_fresh_thread_gets_an_allocator() -> None:
    model, xs, ref = compiled(LAYERS[2])
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(model.run(*xs)[0]))  # a new context
    worker.start()
    worker.join()
    assert len(results) == 1 and rel_err(results[0], ref) <= budget("float16")


def test_misaligned_channels_fall_back_to_pointer_loads() -> None:
    model, xs, ref = compiled(("odd", (2, 20, 28, 28), 20, 1, 1, 0))  # 40-byte fp16 rows
    launch = next(launch for launch in model.launches if launch.name in GEMM_KERNELS)
    assert launch.tma == 0 and launch.config["TMA"] == 0
    assert rel_err(model.run(*xs)[0], ref) <= budget("float16")


def residual_block() -> Network:
    """1x1 then 3x3 convs, the input added back and a relu (fused): TMA on weights and 1x1 activations."""
    net = Network("block", seed=5)
    x = net.input((4, 64, 28, 28))
    y = net.conv2d(net.relu(net.conv2d(x, 64, 1, name="a")), 64, 3, padding=1, name="b")
    net.output(net.relu(net.add(y, x)))
    return net


@pytest.mark.parametrize("capture", ["torch.cuda.graph", "cuda_graphs=True"])
def test_descriptor_launches_capture_into_a_cuda_graph(capture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from triton.runtime import _allocation

    capturing: list[bool] = []
    original = tma._torch_scratch

    def recording(size: int, alignment: int, stream: Any) -> torch.Tensor:
        capturing.append(torch.cuda.is_current_stream_capturing())
        return original(size, alignment, stream)

    monkeypatch.setattr(tma, "_torch_scratch", recording)
    triton.set_allocator(_allocation.NullAllocator())  # the next descriptor launch installs `recording`
    try:
        net = residual_block()
        graphs = capture == "cuda_graphs=True"
        model = convc.compile(net, backend="triton", dtype="float16", device="cuda", check_numerics=False,
                              autotune=False, cuda_graphs=graphs)
        assert any(launch.config.get("TMA") for launch in model.launches)
        static_x = torch.empty((4, 64, 28, 28), dtype=torch.float16, device="cuda")
        if not graphs:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                model(static_x.normal_())  # load every kernel before capture
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_y = model(static_x)
        for seed in (1, 2):
            xs = inputs_for(net, 4, seed)
            if graphs:
                got = model(torch.from_numpy(xs[0]).half().cuda())
            else:
                static_x.copy_(torch.from_numpy(xs[0]).half())
                junk = torch.full((1 << 22,), float("nan"), device="cuda")  # memory taken after capture
                graph.replay()
                got = static_y
                del junk
            torch.cuda.synchronize()
            [ref] = reference(net, xs)
            assert rel_err(got.double().cpu().numpy(), ref) <= budget("float16"), (capture, seed)
        target = local_target()
        if target is not None and target.arch >= 90:  # descriptors need scratch: some drawn while capturing
            assert True in capturing, capturing
    finally:
        triton.set_allocator(_allocation.NullAllocator())  # later launches install the real one again
