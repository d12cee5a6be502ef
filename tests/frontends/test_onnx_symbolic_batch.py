"""An ONNX model with a symbolic batch keeps it: the import records `dynamic_batch`, one compile with
max_batch runs every batch size (against torch in float64), and a graph that changes with the batch
is kept at its fixed size with a warning and refused for other sizes."""
from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from torch import nn

import convc
from convc.cli import main
from convc.errors import GraphError
from convc.frontends import from_onnx
from convc.frontends.building import FrontendError
from convc.serialize import from_json, to_json
from tests.frontends.frontend_helpers import assert_matches, randomize_batch_norm, torch_reference


def export_dynamic(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> bytes:
    """`model` in `dtype` (float64 by default: the exporter folds batch norm into the weights, and float32
    would round them) as ONNX with a symbolic batch named 'batch'."""
    buffer = io.BytesIO()
    model = model.to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation notes about the TorchScript exporter
        torch.onnx.export(model.eval(), (torch.randn(*shape, dtype=dtype),), buffer, dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return buffer.getvalue()


class ViewHead(nn.Module):
    """conv -> relu -> x.view(x.size(0), -1) -> linear: the exporter computes the view's shape from the
    run-time batch (Shape -> Gather -> Concat -> Reshape)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return self.fc(y.view(y.size(0), -1))


@pytest.fixture(scope="module")
def view_head() -> tuple[nn.Module, convc.CompiledModel]:
    torch.manual_seed(0)
    model = ViewHead().eval()
    net = from_onnx(export_dynamic(model, (2, 3, 8, 8)))
    return model.double(), convc.compile(net, backend="numpy", dtype="float64", max_batch=8)


def test_resnet18_with_a_dynamic_batch_runs_batches_1_3_8() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    randomize_batch_norm(model)
    net = from_onnx(export_dynamic(model, (1, 3, 32, 32)))
    assert net.graph.inputs[0].attrs["dynamic_batch"] == "batch"
    assert net.graph.inputs[0].type.shape == (1, 3, 32, 32)
    compiled = convc.compile(net, backend="numpy", dtype="float64", max_batch=8)
    assert compiled.buckets == (1, 2, 4, 8)
    model = model.double()
    gen = torch.Generator().manual_seed(1)
    for batch in (1, 3, 8):
        x = torch.randn(batch, 3, 32, 32, dtype=torch.float64, generator=gen)
        assert_matches(compiled.run(x.numpy()), torch_reference(model, x))


@settings(max_examples=12, deadline=None)
@given(batch=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_any_batch_up_to_the_maximum_matches_torch(view_head: tuple[nn.Module, convc.CompiledModel],
                                                   batch: int, seed: int) -> None:
    model, compiled = view_head
    x = torch.randn(batch, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert_matches(compiled.run(x.numpy()), torch_reference(model, x))


def test_cli_runs_a_dynamic_batch_model_over_a_batch_range(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = ViewHead().eval()
    path = tmp_path / "view_head.onnx"
    path.write_bytes(export_dynamic(model, (2, 3, 8, 8)))
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8))
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(path), "--batch", "1..8", "--dtype", "float64", "--input-file",
                 str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
    out = capsys.readouterr().out
    assert code == 0 and "batch buckets 1, 2, 4, 8" in out and "per batch of 3" in out, out
    expected = torch_reference(model.double(), torch.from_numpy(x))
    assert_matches([np.load(tmp_path / "y.npy")], expected)
    np.save(tmp_path / "x9.npy", np.zeros((9, 3, 8, 8)))
    code = main(["run", str(path), "--batch", "1..8", "--input-file", str(tmp_path / "x9.npy")])
    assert code == 2 and "runs batches 1..8" in capsys.readouterr().err


def symbolic_model(nodes: list[onnx.NodeProto], inputs: dict[str, list[object]],
                   initializers: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v)
                                           for k, v in inputs.items()],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_graph_that_depends_on_the_batch_stays_fixed_and_refuses_other_sizes() -> None:
    # y = x + N (the batch size as a number): folded at import, so batch 1 and batch 3 give other biases.
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "nf"], ["y"])]
    zero = helper.make_tensor("zero", TensorProto.INT64, [], [0])
    model = symbolic_model(nodes, {"x": ["N", 4, 2, 2]}, [zero])
    with pytest.warns(UserWarning, match=r"symbolic batch 'N' is imported as the fixed size 1.*differs"):
        net = from_onnx(model)
    assert "dynamic_batch" not in net.graph.inputs[0].attrs
    x = np.arange(16.0).reshape(1, 4, 2, 2)
    np.testing.assert_array_equal(convc.compile(net, dtype="float64").run(x)[0], x + 1.0)
    with pytest.raises(GraphError, match=r"input 'x' says the ONNX model's graph changes with its batch"):
        convc.compile(net, max_batch=4)


def test_a_batch_mixing_flatten_stays_fixed() -> None:
    # Flatten(axis=0) joins the examples: nothing at batch 1, a reshape convc cannot express at batch 3.
    model = symbolic_model([helper.make_node("Flatten", ["x"], ["y"], axis=0)], {"x": ["N", 3]})
    with pytest.warns(UserWarning, match="importing it for batch 3 fails"):
        net = from_onnx(model)
    with pytest.raises(GraphError, match="cannot change its batch size"):
        convc.compile(net, max_batch=2)


def test_symbolic_non_batch_dims_still_need_input_shapes_and_keep_the_batch_symbol() -> None:
    model = symbolic_model([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3, "H", 4]})
    with pytest.raises(FrontendError, match=r"dimension 2 is symbolic \(H\)"):
        from_onnx(model)
    net = from_onnx(model, input_shapes={"x": (2, 3, 5, 4)})
    assert net.graph.inputs[0].type.shape == (2, 3, 5, 4)
    assert net.graph.inputs[0].attrs["dynamic_batch"] == "N"
    again = from_json(to_json(net.graph), dict(net.graph.params))  # a saved graph keeps the symbol
    assert again.inputs[0].attrs["dynamic_batch"] == "N"


def test_fixed_or_disagreeing_batches_are_not_marked() -> None:
    add = [helper.make_node("Add", ["a", "b"], ["y"])]
    for inputs in ({"a": [2, 3], "b": [2, 3]}, {"a": ["N", 3], "b": ["M", 3]}, {"a": ["N", 3], "b": [1, 3]}):
        net = from_onnx(symbolic_model(add, inputs))  # type: ignore[arg-type]
        assert all("dynamic_batch" not in n.attrs for n in net.graph.inputs), inputs
    net = from_onnx(symbolic_model(add, {"a": ["N", 3], "b": [None, 3]}))  # unnamed joins the named symbol
    assert [n.attrs["dynamic_batch"] for n in net.graph.inputs] == ["N", "N"]


def test_export_writes_the_symbolic_batch_back(tmp_path: Path) -> None:
    import onnxruntime

    torch.manual_seed(0)
    model = ViewHead().eval()
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    expected = torch_reference(copy.deepcopy(model).double(), x)
    for dtype, budget_of in ((torch.float64, "float64"), (torch.float32, "float32")):
        path = tmp_path / f"again_{budget_of}.onnx"
        convc.to_onnx(from_onnx(export_dynamic(copy.deepcopy(model), (2, 3, 8, 8), dtype)), path, optimized=True)
        proto = onnx.load(str(path))
        assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
        again = from_onnx(str(path))  # convc reads it back as batch-polymorphic
        assert again.graph.inputs[0].attrs["dynamic_batch"] == "batch"
        got = convc.compile(again, dtype=budget_of, max_batch=8).run(x.numpy().astype(budget_of))
        assert_matches(got, expected, dtype=budget_of)
    # onnxruntime (no float64 Conv on its CPU) runs the float32 file at a batch it was never given
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_matches(session.run(None, {"x": x.numpy().astype(np.float32)}), expected, dtype="float32")
