"""Broken or hostile ONNX models: each is a FrontendError (or SizeLimitError) naming the node or initializer,
never a wrapped axis, a dropped imaginary part or a NumPy traceback; from_torch refuses the same."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from bad_helpers import raises_naming

import convc
from convc.errors import OptionError, SizeLimitError
from convc.frontends.building import FrontendError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper


def model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any] = ()) -> Any:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def io(name: str, shape: list[int], elem: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, elem, shape)


def test_softmax_axis_7_is_refused_naming_the_node() -> None:
    m = model([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=7)], [io("x", [2, 3])], [io("y", [2, 3])])
    raises_naming(FrontendError, ("Softmax node 'sm'", "axis 7", "rank-2"), lambda: convc.from_onnx(m))


def test_a_softmax_axis_in_range_still_imports_and_matches_torch() -> None:
    m = model([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=-2)], [io("x", [2, 3])], [io("y", [2, 3])])
    x = np.random.default_rng(0).standard_normal((2, 3))
    got = convc.compile(convc.from_onnx(m), dtype="float64").run(x)[0]
    np.testing.assert_allclose(got, torch.softmax(torch.from_numpy(x), dim=0).numpy(), rtol=1e-12)


def test_concat_axis_out_of_range_is_refused_naming_the_node() -> None:
    m = model([helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=5)], [io("x", [1, 2, 3, 3])],
              [io("y", [1, 4, 3, 3])])
    raises_naming(FrontendError, ("Concat node 'cat'", "axis=5"), lambda: convc.from_onnx(m))


def _conv_model(weight: Any) -> Any:
    return model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [io("x", [1, 2, 4, 4])],
                 [io("y", [1, 3, 4, 4])], [weight])


def raw_tensor(name: str, dims: list[int], data: bytes) -> Any:
    """A float initializer with exactly these dims and bytes (onnx.helper would refuse the mismatch)."""
    t = TensorProto()
    t.name, t.data_type, t.raw_data = name, TensorProto.FLOAT, data
    t.dims.extend(dims)
    return t


def test_an_initializer_whose_data_disagrees_with_its_dims_is_named() -> None:
    w = raw_tensor("w", [3, 2, 1, 1], np.ones(5, np.float32).tobytes())
    raises_naming(FrontendError, ("initializer 'w'", "[3, 2, 1, 1]", "does not match its dims"),
                  lambda: convc.from_onnx(_conv_model(w)))


def test_an_initializer_declaring_terabytes_is_refused_before_reading() -> None:
    w = raw_tensor("w", [3, 2, 1000000, 1000000], b"")
    raises_naming(SizeLimitError, ("initializer 'w'", "memory limit"), lambda: convc.from_onnx(_conv_model(w)))


def test_complex_initializers_are_refused_not_truncated() -> None:
    w = numpy_helper.from_array(np.ones((3, 2, 1, 1), np.complex64), "w")
    raises_naming(FrontendError, ("initializer 'w'", "complex"), lambda: convc.from_onnx(_conv_model(w)))


def test_complex_graph_inputs_are_refused() -> None:
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [io("x", [1, 2], TensorProto.COMPLEX64)],
              [io("y", [1, 2], TensorProto.COMPLEX64)])
    raises_naming(FrontendError, ("input 'x'", "COMPLEX64"), lambda: convc.from_onnx(m))


@pytest.mark.filterwarnings("ignore:Complex modules")
def test_from_torch_refuses_complex_weights_naming_the_layer() -> None:
    conv = torch.nn.Conv2d(2, 3, 1).to(torch.complex64).eval()
    raises_naming(FrontendError, ("conv2d", "weight", "complex"),
                  lambda: convc.from_torch(conv, torch.randn(1, 2, 4, 4)))
    raises_naming(OptionError, ("example input 0", "complex64"),
                  lambda: convc.from_torch(conv, torch.randn(1, 2, 4, 4, dtype=torch.complex64)))


def test_batch_norm_with_training_true_is_refused_and_eval_matches_torch() -> None:
    import torch.nn.functional as F

    class BN(torch.nn.Module):
        def __init__(self, training: bool) -> None:
            super().__init__()
            self.flag = training
            self.register_buffer("mean", torch.randn(3, dtype=torch.float64))
            self.register_buffer("var", torch.rand(3, dtype=torch.float64) + 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.batch_norm(x, self.mean, self.var, training=self.flag)

    x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 3 + 1
    raises_naming(FrontendError, ("batch_norm", "training=True"), lambda: convc.from_torch(BN(True).eval(), x))
    eval_bn = BN(False).eval()
    got = convc.compile(convc.from_torch(eval_bn, x), dtype="float64", opt_level=0).run(x.numpy())[0]
    np.testing.assert_allclose(got, eval_bn(x).numpy(), rtol=1e-10, atol=1e-12)
