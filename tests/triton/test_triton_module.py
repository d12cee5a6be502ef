"""The compiled module: memory planning, batch-size variants, emit, input and option errors, the
backend's registration and capabilities."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from triton_check import compile_triton, random_inputs, reference

import convc
from convc.backends.triton import backend
from convc.dsl import Network
from convc.errors import BackendError, OptionError
from convc.numerics import budget, rel_err
from convc.ops import SCHEMAS


def chain(depth: int = 6, shape: tuple[int, ...] = (2, 8, 8, 8)) -> Network:
    net = Network("chain", seed=9)
    y = net.input(shape)
    for i in range(depth):
        y = net.relu(net.conv2d(y, 8, 3, padding=1, name=f"c{i}"))
    net.output(y)
    return net


def test_capabilities_and_registration() -> None:
    assert convc.registry.get_backend("triton") is backend
    caps = backend.capabilities
    assert caps.ops == frozenset(SCHEMAS) - {"input", "param"}
    assert set(caps.conv_algos) == {"implicit_gemm", "im2col", "direct", "winograd_2x2", "winograd_4x4",
                                    "depthwise"}
    assert set(caps.dtypes) == {"float32", "float16", "bfloat16"}
    assert set(caps.devices) == {"cuda", "cpu"}


def test_compiled_module_is_a_torch_module_returning_tensors() -> None:
    net = chain(2)
    model = compile_triton(net)
    assert isinstance(model, torch.nn.Module)
    x = torch.from_numpy(random_inputs(net)[0])
    y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 8, 8, 8) and y.dtype == torch.float32
    [ref] = reference(net, x.numpy())
    assert rel_err(y.numpy(), ref) <= budget("float32")


def test_memory_planner_reuses_buffers_on_a_chain() -> None:
    model = compile_triton(chain(6))
    value = 2 * 8 * 8 * 8 * 4
    # 1 input + 6 convs + 6 relus, one buffer each without planning.
    assert model.naive_activation_bytes == 13 * value
    # A chain needs two live buffers at a time (plus alignment): the planner must find about that.
    assert model.peak_activation_bytes < 3 * value
    assert model.peak_activation_bytes < model.naive_activation_bytes


def test_planned_buffers_never_overlap_while_both_live() -> None:
    """Residual blocks keep a value alive across several nodes: its bytes must stay untouched."""
    net = Network("res", seed=10)
    x = net.input((1, 8, 6, 6))
    y = x
    for i in range(3):
        z = net.relu(net.conv2d(y, 8, 3, padding=1, name=f"a{i}"))
        z = net.conv2d(z, 8, 3, padding=1, name=f"b{i}")
        y = net.relu(net.add(z, y))
    net.output(y)
    model = compile_triton(net)
    plan = model.variants[((1, 8, 6, 6),)].plan
    assert plan.peak_bytes < plan.naive_bytes
    [out] = model.run(*random_inputs(net))
    [ref] = reference(net, *random_inputs(net))
    assert rel_err(out, ref) <= budget("float32")


def test_new_batch_size_compiles_its_own_variant() -> None:
    net = chain(2, (1, 4, 6, 6))
    model = compile_triton(net)
    x3 = np.random.default_rng(1).normal(size=(3, 4, 6, 6)).astype(np.float32)
    [out] = model.run(x3)
    assert set(model.variants) == {((1, 4, 6, 6),), ((3, 4, 6, 6),)}
    assert out.shape == (3, 8, 6, 6)
    # The reference graph is declared at batch 1: compare example by example.
    for i in range(3):
        [ref] = reference(net, x3[i:i + 1])
        assert rel_err(out[i:i + 1], ref) <= budget("float32")
    model.run(x3[:1])
    assert len(model.variants) == 2  # batch 1 again reuses the first variant


def test_packed_parameters_do_not_share_memory_with_the_graph() -> None:
    net = chain(2, (1, 4, 6, 6))
    model = compile_triton(net)
    xs = random_inputs(net)
    [before] = model.run(*xs)
    for array in net.graph.params.values():
        array[...] = 0  # float32 weights and biases could have been packed without a copy
    [after] = model.run(*xs)
    np.testing.assert_array_equal(before, after)


def test_channels_last_and_strided_inputs_are_accepted() -> None:
    net = chain(1)
    model = compile_triton(net)
    x = torch.from_numpy(random_inputs(net)[0])
    expected = model(x)
    assert torch.equal(model(x.to(memory_format=torch.channels_last)), expected)
    wide = torch.zeros(2, 16, 8, 8)
    wide[:, ::2] = x
    assert torch.equal(model(wide[:, ::2]), expected)


def test_multiple_inputs_and_outputs() -> None:
    net = Network("two", seed=11)
    a = net.input((1, 4, 5, 5), name="a")
    b = net.input((1, 4, 5, 5), name="b")
    s = net.add(a, b)
    net.output(net.relu(s), net.global_avg_pool(s))
    xs = random_inputs(net)
    outs = compile_triton(net).run(*xs)
    refs = reference(net, *xs)
    assert [o.shape for o in outs] == [(1, 4, 5, 5), (1, 4, 1, 1)]
    for out, ref in zip(outs, refs):
        assert rel_err(out, ref) <= budget("float32")


@pytest.mark.parametrize("bad,message", [
    (torch.zeros(1, 3, 8, 8), r"expected shape \(batch, 8, 8, 8\).*got \(1, 3, 8, 8\)"),
    (torch.zeros(1, 8, 8), r"expected shape \(batch, 8, 8, 8\)"),
    (torch.zeros(2, 8, 8, 8, dtype=torch.float64), r"expected dtype torch.float32, got torch.float64"),
    (torch.zeros(2, 8, 8, 8, device="meta"), r"expected a tensor on 'cpu', got 'meta'"),
    (torch.zeros(2, 8, 8, 8).to_sparse(), r"expected a dense \(strided\) tensor"),
    (np.zeros((2, 8, 8, 8), np.float32), r"expected a torch.Tensor.*use .run\(\)"),
])
def test_wrong_input_says_what_was_expected(bad: object, message: str) -> None:
    model = compile_triton(chain(1))
    with pytest.raises(BackendError, match=message):
        model(bad)


def test_wrong_number_of_inputs() -> None:
    model = compile_triton(chain(1))
    with pytest.raises(BackendError, match=r"takes 1 input\(s\) \(x\), got 2"):
        model.run(np.zeros((2, 8, 8, 8), np.float32), np.zeros((2, 8, 8, 8), np.float32))


def test_option_errors() -> None:
    net = chain(1)
    with pytest.raises(OptionError, match="unknown option.*bogus.*it takes device, tf32"):
        compile_triton(net, bogus=1)
    with pytest.raises(BackendError, match="cuda_graphs=True needs a CUDA device"):
        compile_triton(net, cuda_graphs=True)
    with pytest.raises(BackendError, match="does not support dtype float64"):
        compile_triton(net, dtype="float64")


def test_emit_writes_kernels_launches_and_ir(tmp_path: Path) -> None:
    net = chain(2)
    model = compile_triton(net)
    model.run(np.zeros((5, 8, 8, 8), np.float32))  # a second variant is emitted too
    written = model.emit(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"graph.txt", "kernels/helpers.py", "kernels/conv_implicit_gemm_kernel.py",
            "kernels/strided_copy_kernel.py", "launches_2x8x8x8.json", "launches_5x8x8x8.json"} <= names
    source = (tmp_path / "kernels/conv_implicit_gemm_kernel.py").read_text()
    assert "def conv_implicit_gemm_kernel(" in source and "tl.dot" in (tmp_path / "kernels/helpers.py").read_text()
    assert "%c0 = conv2d(%x, %c0.weight, %c0.bias)" in (tmp_path / "graph.txt").read_text()
    body = json.loads((tmp_path / "launches_2x8x8x8.json").read_text())
    first = body["launches"][0]
    assert first["node"] == "c0" and first["kernel"] == "conv_implicit_gemm_kernel"
    assert first["config"]["BLOCK_M"] >= 16 and len(first["grid"]) == 3
    assert body["memory"]["peak_bytes"] == model.variants[((2, 8, 8, 8),)].plan.peak_bytes


def test_module_runs_the_default_pass_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through convc.compile's default pipeline (fold_bn, fuse_epilogue, algorithm choice)."""
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    net = Network("bn", seed=12)
    x = net.input((1, 4, 6, 6))
    y = net.relu(net.batch_norm(net.conv2d(x, 8, 3, padding=1)))
    net.output(net.add(net.conv2d(y, 8, 3, padding=1, name="c2"), y))
    net.randomize_batch_norm(seed=2)
    model = convc.compile(net, backend="triton", device="cpu")
    xs = random_inputs(net)
    [out] = model.run(*xs)
    [ref] = reference(net, *xs)
    assert rel_err(out, ref) <= budget("float32", whole_model=True)
    assert all(launch.node != "batch_norm" for launch in model.launches)  # folded into the conv
