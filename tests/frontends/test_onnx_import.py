"""from_onnx: torch.onnx.export of the from_torch test models gives torch's outputs again, and hand-built
ONNX graphs (onnx.helper) give what ONNX's own reference implementation computes."""
from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from frontend_helpers import assert_matches, randomize_batch_norm, run_convc, torch_reference
from torch import nn

import convc
from convc.frontends import from_onnx
from convc.frontends.building import FrontendError, UnsupportedError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from test_torch_import import Conv1dNet, Conv2dNet, Conv3dNet, Functional, Residual

ORIGINAL_LRN = F.local_response_norm
# ONNX stores float attributes (epsilon, alpha, ...) in 32 bits: a float64 round trip is that exact.
ATTRIBUTE_PRECISION = 1e-6


class _OnnxLRN(torch.autograd.Function):
    """torch.onnx.export writes F.local_response_norm as a dozen ops (Pow, Pad, AveragePool, ...), which
    convc does not reassemble: exporting through this function writes ONNX's own LRN node instead."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        return ORIGINAL_LRN(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g: object, x: object, size: int, alpha: float, beta: float, k: float) -> object:
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)  # type: ignore[attr-defined]


@contextmanager
def lrn_as_onnx_lrn() -> Iterator[None]:
    original = F.local_response_norm
    F.local_response_norm = lambda x, size, alpha=1e-4, beta=0.75, k=1.0: _OnnxLRN.apply(
        x, size, alpha, beta, k)
    try:
        yield
    finally:
        F.local_response_norm = original


def export(model: nn.Module, *inputs: torch.Tensor, opset: int = 13) -> bytes:
    buffer = io.BytesIO()
    with lrn_as_onnx_lrn():
        torch.onnx.export(model, tuple(inputs), buffer, dynamo=False, opset_version=opset)
    return buffer.getvalue()


def check_round_trip(model: nn.Module, shape: tuple[int, ...], opset: int = 13) -> convc.Network:
    model = model.double().eval()
    randomize_batch_norm(model)
    x = torch.randn(*shape, dtype=torch.float64)
    net = from_onnx(export(model, x, opset=opset))
    assert_matches(run_convc(net, x.numpy()), torch_reference(model, x), tolerance=ATTRIBUTE_PRECISION)
    return net


@pytest.mark.parametrize("model, shape, opset", [
    (Conv1dNet(), (2, 3, 20), 13),
    (Conv2dNet(), (2, 3, 15, 13), 13),
    (Conv2dNet(), (2, 3, 15, 13), 9),
    (Conv3dNet(), (2, 2, 6, 6, 6), 11),
    (Functional(), (2, 3, 7, 9), 13),
    (Residual(), (2, 4, 9, 9), 17),
], ids=["conv1d", "conv2d", "conv2d-opset9", "conv3d-opset11", "functional", "residual-opset17"])
def test_torch_export_round_trip_matches_torch(model: nn.Module, shape: tuple[int, ...], opset: int) -> None:
    check_round_trip(model, shape, opset)


def test_initializers_keep_their_names() -> None:
    model = Conv2dNet().double().eval()
    x = torch.randn(1, 3, 15, 13, dtype=torch.float64)
    proto = onnx.load_from_string(export(model, x))
    net = from_onnx(proto)
    names = {t.name for t in proto.graph.initializer}
    # the exporter folds each batch norm into its conv (new names); the linear layer keeps its key
    assert "classifier.2.weight" in net.graph.params
    assert {k for k in net.graph.params if "." in k and not k.startswith("/")} <= names


# ---------------------------------------------------------------------------- hand-built graphs
def make_model(nodes: list, inputs: dict[str, tuple[int, ...]], outputs: list[str],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "handmade",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check_against_reference(model: onnx.ModelProto, **feeds: np.ndarray) -> convc.Network:
    expected = ReferenceEvaluator(model).run(None, feeds)
    net = from_onnx(model)
    actual = convc.compile(net, backend="numpy", dtype="float32").run(*feeds.values())
    assert_matches(actual, expected, dtype="float32")
    return net


def test_gemm_alpha_beta_and_transposes_fold_into_the_weights(rng: np.random.Generator) -> None:
    b = rng.standard_normal((5, 4)).astype(np.float32)   # transB=1: (N, K)
    c = rng.standard_normal((1, 5)).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=0.5, beta=2.0, transB=1)],
                       {"a": (3, 4)}, ["y"], {"b": b, "c": c})
    net = check_against_reference(model, a=rng.standard_normal((3, 4)).astype(np.float32))
    assert [n.op for n in net.graph.nodes() if n.op not in ("input", "param")] == ["linear"]


def test_matmul_and_a_broadcast_add_become_linear_and_bias_add(rng: np.random.Generator) -> None:
    w = rng.standard_normal((6, 3)).astype(np.float32)
    bias = rng.standard_normal((3,)).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["m"]),
                        helper.make_node("Add", ["bias", "m"], ["y"])],
                       {"x": (2, 6)}, ["y"], {"w": w, "bias": bias})
    net = check_against_reference(model, x=rng.standard_normal((2, 6)).astype(np.float32))
    assert [n.op for n in net.graph.nodes() if n.op not in ("input", "param")] == ["linear", "bias_add"]
    assert "bias" in net.graph.params  # an unchanged initializer keeps its ONNX name


def test_shape_plumbing_folds_into_a_flatten(rng: np.random.Generator) -> None:
    """x.view(x.size(0), -1) as exporters write it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Constant", [], ["minus1"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    net = check_against_reference(make_model(nodes, {"x": (2, 3, 4, 5)}, ["y"]),
                                  x=rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    assert [n.op for n in net.graph.nodes() if n.op not in ("input", "param")] == ["flatten"]


def pool_reference(op: str, x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
                   pads: tuple[tuple[int, int], ...], ceil: bool) -> np.ndarray:
    """ONNX pooling written out in torch: explicit padding that never counts (-inf for max; for the
    average, window sums of the values over window sums of a mask of real positions)."""
    t = torch.from_numpy(x).double()
    (hl, hh), (wl, wh) = pads
    if op == "MaxPool":
        padded = F.pad(t, (wl, wh, hl, hh), value=-float("inf"))
        return F.max_pool2d(padded, kernel, strides, ceil_mode=ceil).numpy()
    sums = F.avg_pool2d(F.pad(t, (wl, wh, hl, hh)), kernel, strides, ceil_mode=ceil, divisor_override=1)
    counts = F.avg_pool2d(F.pad(torch.ones_like(t), (wl, wh, hl, hh)), kernel, strides, ceil_mode=ceil,
                          divisor_override=1)
    return (sums / counts).numpy()


def same_pads(size: int, k: int, s: int, upper: bool) -> tuple[int, int]:
    total = max((-(-size // s) - 1) * s + k - size, 0)  # the ONNX spec's SAME padding
    return (total // 2, total - total // 2) if upper else (total - total // 2, total // 2)


@pytest.mark.parametrize("attrs, pads", [
    ({"auto_pad": "SAME_UPPER"}, (same_pads(7, 3, 2, True), same_pads(8, 3, 2, True))),
    ({"auto_pad": "SAME_LOWER"}, (same_pads(7, 3, 2, False), same_pads(8, 3, 2, False))),
    ({"pads": [0, 1, 1, 1]}, ((0, 1), (1, 1))),
    ({"pads": [1, 1, 1, 1], "ceil_mode": 1}, ((1, 1), (1, 1))),
], ids=["same-upper", "same-lower", "asymmetric-pads", "ceil"])
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_padding_layouts_match_onnx(op: str, attrs: dict, pads: tuple, rng: np.random.Generator) -> None:
    """(onnx's reference evaluator gets MaxPool SAME_LOWER wrong, so the reference here is torch's.)"""
    x = rng.standard_normal((1, 2, 7, 8)).astype(np.float32)
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], **attrs)
    net = from_onnx(make_model([node], {"x": (1, 2, 7, 8)}, ["y"]))
    expected = pool_reference(op, x, (3, 3), (2, 2), pads, bool(attrs.get("ceil_mode", 0)))
    assert_matches(convc.compile(net, backend="numpy").run(x), [expected], dtype="float32")


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad(auto_pad: str, rng: np.random.Generator) -> None:
    w = rng.standard_normal((4, 2, 3, 2)).astype(np.float32)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[2, 1],
                                         dilations=[1, 2])], {"x": (1, 2, 7, 6)}, ["y"], {"w": w})
    check_against_reference(model, x=rng.standard_normal((1, 2, 7, 6)).astype(np.float32))


def test_softmax_before_opset_13_on_a_trailing_axis(rng: np.random.Generator) -> None:
    softmax = helper.make_node("Softmax", ["x"], ["y"], axis=1)
    model = make_model([softmax], {"x": (2, 5, 1, 1)}, ["y"], opset=11)
    check_against_reference(model, x=rng.standard_normal((2, 5, 1, 1)).astype(np.float32))
    coerced = make_model([softmax], {"x": (2, 5, 3)}, ["y"], opset=11)
    with pytest.raises(FrontendError, match="normalizes axes 1..2"):
        from_onnx(coerced)


def test_old_opsets_are_upgraded(rng: np.random.Generator) -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["r"]),
                        helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                       {"x": (1, 3, 4, 4)}, ["y"], opset=7)
    net = from_onnx(model)
    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    expected = np.maximum(x, 0).reshape(1, 3, 2, 2, 2, 2).max(axis=(3, 5))
    np.testing.assert_allclose(convc.compile(net, backend="numpy").run(x)[0], expected, rtol=1e-6)


def test_unsupported_ops_are_listed_with_node_names_before_anything_runs() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="act"),
             helper.make_node("Erf", ["r"], ["e"], name="gelu/erf"),
             helper.make_node("Softplus", ["e"], ["t"], name="smooth"),
             helper.make_node("Relu", ["t"], ["y"], name="act2")]
    with pytest.raises(UnsupportedError) as info:
        from_onnx(make_model(nodes, {"x": (1, 2, 3, 4)}, ["y"]))
    message = str(info.value)
    assert "Erf node 'gelu/erf': op Erf is not supported" in message
    assert "Softplus node 'smooth': op Softplus is not supported" in message
    assert "2 problems" in message


@pytest.mark.parametrize("node, fragment", [
    (helper.make_node("LRN", ["x"], ["y"], size=4), "even size=4"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2]), "dilations"),
    (helper.make_node("Flatten", ["x"], ["y"], axis=2), "reshape of (2, 3, 4, 5) to (6, 20)"),
    (helper.make_node("Concat", ["x", "x"], ["y"], axis=0), "batch axis 0"),
    (helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2]), "Transpose (0, 1, 3, 2)"),
], ids=["lrn-even", "pool-dilation", "flatten-into-batch", "concat-batch", "transpose-spatial"])
def test_what_the_ir_cannot_express_is_named(node: onnx.NodeProto, fragment: str) -> None:
    with pytest.raises(convc.ConvcError) as info:
        from_onnx(make_model([node], {"x": (2, 3, 4, 5)}, ["y"]))
    assert fragment in str(info.value)
    assert f"{node.op_type} node 'y'" in str(info.value)


def test_symbolic_batch_defaults_to_one_and_input_shapes_override(tmp_path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(FrontendError, match=r"dimension 2 is symbolic \(H\)"):
        from_onnx(model)
    net = from_onnx(model, input_shapes={"x": (2, 3, 5, 4)})
    assert net.graph.inputs[0].type.shape == (2, 3, 5, 4)
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    assert from_onnx(str(path), input_shapes={"x": (1, 3, 2, 4)}).graph.inputs[0].type.shape == (1, 3, 2, 4)


def test_missing_file_and_missing_onnx_package_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FrontendError, match="does not exist"):
        from_onnx("no/such/model.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(FrontendError, match=r"pip install convc\[onnx\]"):
        from_onnx("model.onnx")
