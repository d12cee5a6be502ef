"""The ONNX backend API over convc: prepare/run, run_node, devices, and weights given as graph inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

from convc.frontends.building import UnsupportedError
from convc.frontends.onnx_backend import ConvcBackend, backend_for


def test_run_node_binds_the_weight_inputs(rng: np.random.Generator) -> None:
    """A Conv node whose W and B arrive as inputs (as in ONNX's node tests) runs with them as weights."""
    x = rng.standard_normal((1, 2, 6, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 0, 1, 2], strides=[2, 1])
    (y,) = ConvcBackend.run_node(node, [x, w, b])
    padded = F.pad(torch.from_numpy(x).double(), (0, 2, 1, 1))
    expected = F.conv2d(padded, torch.from_numpy(w).double(), torch.from_numpy(b).double(), stride=(2, 1))
    np.testing.assert_allclose(y, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_a_prepared_model_recompiles_only_for_new_weights(rng: np.random.Generator) -> None:
    graph = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"], transB=1)], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, (2, 3)),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, (4, 3))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2, 4))])
    rep = ConvcBackend.prepare(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b1, b2 = rng.standard_normal((2, 4, 3)).astype(np.float32)
    for b in (b1, b2, b1):
        (y,) = rep.run([a, b])
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, a @ b.T, rtol=1e-5, atol=1e-6)
    (y,) = rep.run({"a": a * 2, "b": b2})
    np.testing.assert_allclose(y, 2 * a @ b2.T, rtol=1e-5, atol=1e-6)
    assert len(rep._compiled) == 2  # one compiled model per distinct weight b (a is a run-time input)


def test_prepare_rejects_unsupported_ops_before_running() -> None:
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"], name="erf1")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 2))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2))])
    with pytest.raises(UnsupportedError, match="Erf node 'erf1'"):
        ConvcBackend.prepare(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_devices() -> None:
    assert ConvcBackend.supports_device("CPU")
    assert not ConvcBackend.supports_device("CUDA")  # the NumPy backend runs on the host only
    assert backend_for("torch").supports_device("CUDA") == torch.cuda.is_available()
