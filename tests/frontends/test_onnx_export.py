"""convc.to_onnx / `convc export`: zoo models written as standard ONNX (opset 17), run by onnxruntime to
the NumPy float64 numbers, original and optimized (folded BN, fused epilogues expanded back, Winograd
weights turned back into filters), in float64 through onnx's reference evaluator, and back through
convc.from_onnx."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import convc
import convc.models
from convc.cli import main
from convc.compiler import optimize
from convc.dsl import Network
from convc.backends.onnxruntime import in_dtype
from convc.frontends.onnx_export import WRITERS, ExportError, to_onnx
from convc.numerics import budget, rel_err
from convc.registry import get_backend

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ZOO = [("lenet5", {}), ("resnet18", {"input_size": 32}), ("googlenet", {"input_size": 64}),
       ("alexnet", {}), ("nin", {"input_size": 96})]
FLOAT32 = 1e-4


def reference(net: Network | convc.Graph, x: np.ndarray) -> np.ndarray:
    return convc.compile(net, opt_level=0, dtype="float64").run(x)[0]


def run_ort(path_or_proto: Path | bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path_or_proto, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("optimized", [False, True], ids=["as-built", "optimized"])
@pytest.mark.parametrize("name,options", ZOO, ids=[z[0] for z in ZOO])
def test_onnxruntime_runs_the_export_to_the_same_numbers(tmp_path: Path, name: str, options: dict,
                                                         optimized: bool) -> None:
    net = convc.models.get(name, **options)
    x = np.random.default_rng(0).standard_normal(net.graph.inputs[0].type.shape)
    path = tmp_path / f"{name}.onnx"
    proto = to_onnx(net, path, optimized=optimized)
    assert proto.opset_import[0].version >= 17 and path.exists()
    ops = {n.op_type for n in proto.graph.node}
    if optimized and name == "resnet18":
        assert "BatchNormalization" not in ops and "Relu" in ops  # folded, and the epilogues expanded
    assert rel_err(run_ort(str(path), x), reference(net, x)) <= FLOAT32


def test_float64_export_evaluates_to_float64_numbers_in_onnx_s_reference_runtime() -> None:
    """onnxruntime's CPU provider has no float64 Conv; onnx's own evaluator does."""
    from onnx.reference import ReferenceEvaluator

    g = in_dtype(convc.models.get("lenet5").graph, "float64")
    x = np.random.default_rng(1).standard_normal(g.inputs[0].type.shape)
    proto = to_onnx(g, optimized=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    y = ReferenceEvaluator(proto).run(None, {g.inputs[0].name: x})[0]
    assert y.dtype == np.float64 and rel_err(y, reference(g, x)) <= 1e-12


@pytest.mark.parametrize("optimized", [False, True], ids=["as-built", "optimized"])
def test_round_trip_through_from_onnx_gives_the_same_numbers(optimized: bool) -> None:
    """As built, the parameters travel unchanged: the float64 whole-model budget. Optimized, the folded
    weights are stored in the graph's float32: agreement to float32 rounding."""
    net = convc.models.get("resnet18", input_size=32)
    x = np.random.default_rng(2).standard_normal(net.graph.inputs[0].type.shape)
    back = convc.from_onnx(to_onnx(net, optimized=optimized).SerializeToString())
    tolerance = 1e-6 if optimized else budget("float64", whole_model=True)
    assert rel_err(reference(back, x), reference(net, x)) <= tolerance


def test_winograd_transformed_weights_are_written_back_as_3x3_filters() -> None:
    net = convc.models.get("resnet18", input_size=32)
    g, _, _ = optimize(net, algo={"layer1.0.conv1": "winograd_4x4", "layer2.0.conv2": "winograd_2x2"},
                       check_numerics=False)
    assert g.node("layer1.0.conv1").attrs["weight_transformed"]
    x = np.random.default_rng(3).standard_normal(g.inputs[0].type.shape)
    proto = to_onnx(g)
    shapes = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    assert shapes["layer1.0.conv1.weight.winograd_4x4.filters"] == (64, 64, 3, 3)
    assert rel_err(run_ort(proto.SerializeToString(), x), reference(net, x)) <= FLOAT32


def test_an_op_onnx_cannot_express_names_the_node() -> None:
    net = Network("even")
    net.output(net.lrn(net.input((1, 4, 5, 5)), size=2, name="norm"))
    with pytest.raises(ExportError, match="'norm'.*even window size 2"):
        to_onnx(net)


def test_an_unwritable_path_is_an_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot write the ONNX model"):
        to_onnx(convc.models.get("lenet5"), blocker / "m.onnx")


def test_convc_export_writes_a_file_onnxruntime_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "lenet.onnx"
    assert main(["export", "lenet5", "-o", str(path), "-O2"]) == 0
    assert "wrote" in capsys.readouterr().out
    net = convc.models.get("lenet5")
    x = np.random.default_rng(4).standard_normal(net.graph.inputs[0].type.shape)
    assert rel_err(run_ort(str(path), x), reference(net, x)) <= FLOAT32


def test_the_exporter_writes_every_op_the_onnxruntime_backend_claims() -> None:
    assert get_backend("onnxruntime").capabilities.ops <= set(WRITERS)
