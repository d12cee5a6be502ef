"""Fused epilogues (bias, activations, residual adds, activation after the add) on every GEMM-like kernel,
built by hand as the fuse_epilogue pass would build them, against the unfused graph on the NumPy backend."""
from __future__ import annotations

import pytest
from triton_check import apply_steps, check, compile_triton, fuse, set_algo

from convc.backends.triton import epilogue
from convc.backends.triton.conv_depthwise import conv_depthwise_kernel
from convc.backends.triton.conv_direct import conv_direct_kernel
from convc.backends.triton.conv_implicit_gemm import conv_implicit_gemm_kernel
from convc.backends.triton.conv_winograd import winograd_output_kernel
from convc.backends.triton.elementwise import elementwise_kernel
from convc.backends.triton.epilogue import NO_EPILOGUE, EpilogueStep, encode_steps, epilogue_meta
from convc.backends.triton.gemm import gemm_kernel
from convc.backends.triton.split_k import split_k_reduce_kernel
from convc.dsl import Network
from convc.errors import BackendError

# GPU-sized blocks, so these small shapes still run several programs and K steps.
pytestmark = pytest.mark.usefixtures("small_blocks")

EPILOGUES = {
    "relu": (("relu",),),
    "leaky_relu": (("leaky_relu", 0.2),),
    "sigmoid": (("sigmoid",),),
    "tanh": (("tanh",),),
    "elu": (("elu", 0.7),),
    "add": (("add",),),
    "add_relu": (("add",), ("relu",)),
    "relu_add_tanh": (("relu",), ("add",), ("tanh",)),
    "two_adds_elu": (("add",), ("elu", 1.0), ("add",)),
}


def conv_block(algo: str | None, steps: tuple, shape: tuple[int, ...] = (2, 8, 7, 9), groups: int = 1,
               bias: bool = True, fused: bool = True) -> Network:
    """x -> 1x1 convs (residual sources) and x -> 3x3 conv followed by `steps`, fused into the conv or as
    separate nodes (same seed and names, so the same parameters)."""
    net = Network("block", seed=3)
    x = net.input(shape)
    adds = sum(1 for s in steps if s[0] == "add")
    residuals = [net.conv2d(x, 16, 1, name=f"res{i}") for i in range(adds)]
    y = net.conv2d(x, 16, 3, padding=1, groups=groups, bias=bias, name="main")
    set_algo(net, y, algo)
    if fused:
        net.output(y)
        fuse(net, y, steps, residuals)
    else:
        net.output(apply_steps(net, y, steps, residuals))
    return net


def check_block(algo: str | None, steps: tuple, dtype: str = "float32", **kw: object) -> None:
    unfused = conv_block(algo, steps, fused=False, **kw)  # type: ignore[arg-type]
    check(conv_block(algo, steps, **kw), dtype, algo, reference_model=unfused)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", EPILOGUES)
def test_implicit_gemm_epilogues(name: str) -> None:
    check_block("implicit_gemm", EPILOGUES[name])


@pytest.mark.parametrize("algo", ["direct", "im2col", "winograd_2x2", "winograd_4x4"])
@pytest.mark.parametrize("name", ["add_relu", "two_adds_elu"])
def test_other_algorithms_epilogues(algo: str, name: str) -> None:
    check_block(algo, EPILOGUES[name])


def test_grouped_conv_epilogue_without_bias() -> None:
    check_block("implicit_gemm", EPILOGUES["add_relu"], groups=4, bias=False)
    check_block("im2col", EPILOGUES["relu_add_tanh"], groups=2, bias=False)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_epilogue(dtype: str) -> None:
    check_block("implicit_gemm", EPILOGUES["add_relu"], dtype)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "add_relu", "two_adds_elu"])
def test_linear_epilogues(name: str) -> None:
    steps = EPILOGUES[name]
    nets = []
    for fused in (True, False):
        net = Network("fc", seed=4)
        x = net.input((3, 40))
        adds = sum(1 for s in steps if s[0] == "add")
        residuals = [net.linear(x, 24, name=f"res{i}") for i in range(adds)]
        y = net.linear(x, 24, name="fc")
        if fused:
            net.output(y)
            fuse(net, y, steps, residuals)
        else:
            net.output(apply_steps(net, y, steps, residuals))
        nets.append(net)
    check(nets[0], reference_model=nets[1])


def test_too_many_residuals_is_a_backend_error() -> None:
    net = conv_block("implicit_gemm", (("add",), ("add",), ("add",)))
    with pytest.raises(BackendError, match="node 'main'.*at most 2"):
        compile_triton(net)


def test_epilogue_encoding_names_each_step_and_its_parameter() -> None:
    encoded = encode_steps((("add",), ("leaky_relu", 0.1), ("clip", 0.0, 6.0)), "conv1")
    assert encoded.steps == (EpilogueStep.ADD_RESIDUAL0, EpilogueStep.LEAKY_RELU, EpilogueStep.CLIP_LOW,
                             EpilogueStep.CLIP_HIGH)
    assert encoded.params == (0.0, 0.1, 0.0, 6.0)
    assert epilogue_meta(encoded.steps) == {"EPI_STEP0": 6, "EPI_STEP1": 2, "EPI_STEP2": 8, "EPI_STEP3": 9}
    assert encode_steps((("add",), ("add",)), "c").steps[:2] == (EpilogueStep.ADD_RESIDUAL0,
                                                                 EpilogueStep.ADD_RESIDUAL1)
    assert encode_steps((), "c") == NO_EPILOGUE


def test_every_step_code_has_its_jit_constant() -> None:
    """_apply_step compares against STEP_<name> constexpr globals: each must exist with the enum's value."""
    for step in EpilogueStep:
        if step is not EpilogueStep.NONE:
            assert getattr(epilogue, f"STEP_{step.name}").value == step.value


@pytest.mark.parametrize("kernel", [gemm_kernel, conv_implicit_gemm_kernel, conv_direct_kernel,
                                    conv_depthwise_kernel, split_k_reduce_kernel, elementwise_kernel, winograd_output_kernel])
def test_epilogue_kernels_take_the_named_codes_and_parameters(kernel: object) -> None:
    names = kernel.arg_names  # type: ignore[attr-defined]
    assert [n for n in names if n.startswith("EPI_STEP")] == list(epilogue_meta(NO_EPILOGUE.steps))
    assert [n for n in names if n.startswith("epi_param")] == [f"epi_param{i}" for i in range(4)]
