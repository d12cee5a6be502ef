"""fuse_input_scale (Triton and NumPy pipelines): the squeeze-excitation multiply x * s moves into the 1x1
conv reading it; the NumPy and torch backends honour attrs["input_scale"] as well (same outputs as before
the pass; NumPy, for one image, scales the smaller of weight and input, with NaN and inf as torch), and
multiplies that are not that pattern stay."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from convc.backends.numpy_ref import jit
from pass_check import check_rewrite, seeded_inputs, with_float64_params

import convc
from convc.compiler import optimize
from convc.dsl import Network

# The Triton pipeline without choose_conv_algo, whose implicit_gemm the NumPy reference cannot run.
PIPELINE = ["fuse_silu", "dce", "fuse_epilogue", "fuse_input_scale"]


def se_block(kernel: int = 1, stride: int = 1, groups: int = 1, residual: bool = False,
             extra_reader: bool = False, scale_first: bool = False, shape: tuple = (2, 8, 6, 6)) -> Network:
    """EfficientNet's MBConv tail: depthwise conv, SE (pool, 1x1, SiLU, 1x1, sigmoid), x * s, 1x1 project."""
    net = Network("se", seed=3)
    x = net.input(shape)
    h = net.silu(net.conv2d(x, 16, 3, padding=1, groups=8, name="dw"))
    s = net.global_avg_pool(h)
    s = net.silu(net.conv2d(s, 4, 1, name="squeeze"))
    s = net.sigmoid(net.conv2d(s, 16, 1, name="excite"))
    y = net.mul(s, h) if scale_first else net.mul(h, s)
    z = net.conv2d(y, 8, kernel, stride=stride, padding=kernel // 2, groups=groups, name="project")
    net.output(net.add(z, x) if residual else z)
    if extra_reader:
        net.output(y)
    return net


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("scale_first", [False, True], ids=["h*s", "s*h"])
def test_the_se_multiply_moves_into_the_projection_conv(residual: bool, scale_first: bool) -> None:
    net = se_block(residual=residual, scale_first=scale_first)
    g, _ = check_rewrite(net.graph, PIPELINE, expect={"mul": 0}, backend="triton")
    project = g.node("project")
    acts = g.activation_inputs(project)
    assert project.attrs["input_scale"] is True and len(acts) == (3 if residual else 2)
    assert g.node(acts[-1]).type.shape == (2, 16, 1, 1)
    assert project.attrs["epilogue"] == ((("add",),) if residual else ())


@pytest.mark.parametrize("block", [se_block(kernel=3), se_block(stride=2), se_block(groups=2),
                                   se_block(extra_reader=True)],
                         ids=["3x3", "strided", "grouped", "mul-read-elsewhere"])
def test_other_readers_keep_the_multiply(block: Network) -> None:
    check_rewrite(block.graph, PIPELINE, expect={"mul": 1}, backend="triton")


@pytest.mark.parametrize("backend, fused", [("numpy", True), ("torch", False)])
def test_the_triton_and_numpy_pipelines_fuse(backend: str, fused: bool) -> None:
    check_rewrite(se_block().graph, None, expect={"mul": 0 if fused else 1}, backend=backend)


@pytest.mark.parametrize("numba", ["1", "0"], ids=["compiled", "numpy"])
@pytest.mark.parametrize("size, scaled", [(6, "weight"), (1, "input")])
def test_numpy_scales_the_smaller_operand_like_torch(size: int, scaled: str, numba: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One image: on a 6x6 map the projection's weight (8 x 16) is scaled rather than the input (16 x 36),
    on a 1x1 map the input; both give torch float64's numbers, and NaN / inf reach the output as in torch."""
    monkeypatch.setenv(jit.SWITCH, numba)
    net = se_block(residual=True, shape=(1, 8, size, size))
    model = convc.compile(net.graph, backend="numpy", dtype="float32", opt_level=2, check_numerics=False)
    project = model.graph.node("project")
    assert project.attrs["input_scale"] and "mul" not in {n.op for n in model.graph.nodes()}
    weight = model.graph.params[project.inputs[-2]]
    assert (weight.size < 16 * size * size) == (scaled == "weight")
    reference = convc.compile(with_float64_params(net.graph), backend="torch", dtype="float64", opt_level=0)
    x = seeded_inputs(net.graph)[0].astype(np.float32)
    np.testing.assert_allclose(model.run(x)[0], reference.run(x.astype(np.float64))[0], rtol=1e-4, atol=1e-5)
    x[0, 2, 0, 0] = np.inf  # through the pool into every gate: all NaN or inf downstream, as in torch
    with np.errstate(invalid="ignore", over="ignore"):
        got, expected = model.run(x)[0], np.asarray(reference.run(x.astype(np.float64))[0])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_numpy_and_torch_run_a_fused_graph_like_torch(backend: str) -> None:
    net = se_block(residual=True)
    before = with_float64_params(net.graph)
    after, _, _ = optimize(before, backend="triton", dtype="float32", opt_level=2, passes=PIPELINE,
                           check_numerics=False)
    assert after.node("project").attrs["input_scale"]
    inputs = seeded_inputs(before)
    expected = convc.compile(before, backend="numpy", dtype="float64", opt_level=0).run(*inputs)[0]
    out = convc.compile(after, backend=backend, dtype="float64" if backend == "numpy" else "float32",
                        opt_level=0).run(*inputs)[0]
    np.testing.assert_allclose(np.asarray(out, np.float64), expected, rtol=1e-5, atol=1e-6)
    assert torch.is_tensor(torch.as_tensor(out))


def test_a_wrong_scale_shape_is_refused_by_the_verifier() -> None:
    net = se_block()
    after, _, _ = optimize(with_float64_params(net.graph), backend="triton", dtype="float32", opt_level=2,
                           passes=PIPELINE, check_numerics=False)
    project = after.node("project")
    acts = after.activation_inputs(project)
    bad = project.replace(inputs=(acts[0], acts[0]) + project.inputs[len(acts):])
    after.replace_node(bad)
    with pytest.raises(Exception, match="input_scale operand .* must have shape 2x16x1x1"):
        after.verify()
