"""TMA tensor descriptors on a CUDA device (marker `gpu`; skipped without one): the default fp16 plan of
ResNet-50's 1x1 and 3x3 layers reads its weights (and the 1x1 activations) through descriptors on a
Hopper GPU, and every TMA twin the tuner may pick matches torch.nn.functional in float64; a launch from a
fresh thread (no Triton allocator set yet) and misaligned channel counts still run correctly."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from test_triton_gpu import inputs_for, layer_net, reference

import convc
from convc.backends.triton.aot import compile_launch, kernel_stats
from convc.backends.triton.autotune import candidate_configs
from convc.backends.triton.targets import local_target
from convc.backends.triton.tma import TMA_ACTIVATIONS, TMA_WEIGHTS
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
