"""convc.to_onnx for the zoo's ops: every activation standalone and fused into a conv epilogue, mul,
channel_scale, layer_norm over channels, channel_shuffle, slice and adaptive_avg_pool (any size), checked
in float64 through onnx's reference evaluator and in float32 through onnxruntime against the NumPy
backend in float64 (torchvision's models: tests/models/test_torchvision_onnx_export.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from convc.backends.onnxruntime import in_dtype
from hypothesis import given, settings
from hypothesis import strategies as st

import convc
from convc.compiler import optimize
from convc.dsl import Network
from convc.frontends.onnx_export import to_onnx
from convc.numerics import budget, rel_err

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops._op import OpRunUnaryNum

FLOAT32 = 1e-4
FLOAT64 = 1e-12  # an activation in float64: float64 constants all the way
FLOAT64_MODEL = budget("float64", whole_model=True)  # LayerNormalization's epsilon is a float32 attribute


class Erf(OpRunUnaryNum):
    """onnx's reference Erf rounds to float32; this one keeps float64 (math.erf is correctly rounded)."""

    op_domain = ""

    def _run(self, x: np.ndarray) -> tuple[np.ndarray]:
        return (np.vectorize(math.erf, otypes=[x.dtype])(x),)
ACTIVATIONS = [("relu6", {}), ("leaky_relu", {"negative_slope": 0.1}), ("elu", {"alpha": 0.7}), ("hardtanh", {}), ("hardswish", {}), ("hardsigmoid", {}), ("silu", {}),
               ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("clip", {"min": -0.5, "max": 0.25})]


def random_params(graph: convc.Graph, seed: int = 0) -> None:
    """Weights away from their identity start, so a layer_norm or channel_scale that is left out shows."""
    rng = np.random.default_rng(seed)
    for name, value in graph.params.items():
        graph.params[name] = (rng.standard_normal(value.shape) * 0.5 + 0.5).astype(value.dtype)


def reference(graph: convc.Graph, x: np.ndarray) -> np.ndarray:
    return convc.compile(graph, opt_level=0, dtype="float64").run(x)[0]


def evaluate_float64(graph: convc.Graph, x: np.ndarray, optimized: bool = False) -> np.ndarray:
    g = in_dtype(graph, "float64")
    proto = to_onnx(g, optimized=optimized)
    return ReferenceEvaluator(proto, new_ops=[Erf]).run(None, {g.inputs[0].name: x})[0]


def run_onnxruntime(graph: convc.Graph, x: np.ndarray, optimized: bool = False) -> np.ndarray:
    proto = to_onnx(graph, optimized=optimized)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {graph.inputs[0].name: x.astype(np.float32)})[0]


def activation_net(op: str, options: dict, fused: bool) -> Network:
    """conv -> activation (the optimized export fuses it into the conv's epilogue); or the activation
    alone, straight on the input."""
    net = Network(f"{op}_net")
    x = net.input((2, 3, 6, 6))
    y = net.conv2d(x, 4, 3, padding=1, name="conv") if fused else x
    net.output(getattr(net, op)(y, **options, name="act"))
    return net


@pytest.mark.parametrize("fused", [False, True], ids=["standalone", "fused"])
@pytest.mark.parametrize("op,options", ACTIVATIONS, ids=[f"{a}{o.get('approximate', '')}" for a, o in ACTIVATIONS])
def test_activations_export_to_the_same_numbers(op: str, options: dict, fused: bool) -> None:
    net = activation_net(op, options, fused)
    g = net.graph
    x = np.random.default_rng(1).standard_normal(g.inputs[0].type.shape) * 4  # past every clip bound
    expected = reference(g, x)
    if fused:
        optimized, _, _ = optimize(g, backend="numpy", opt_level=2, disable=("choose_conv_algo",),
                                   check_numerics=False)
        assert optimized.node("conv").attrs["epilogue"], "the activation should sit in the conv's epilogue"
    assert rel_err(evaluate_float64(g, x, optimized=fused), expected) <= FLOAT64
    assert rel_err(run_onnxruntime(g, x, optimized=fused), expected) <= FLOAT32


def zoo_ops_net(pool: tuple[int, int]) -> Network:
    net = Network("zoo_ops")
    x = net.input((2, 8, 7, 5))
    gate = net.sigmoid(net.global_avg_pool(x), name="gate")
    scaled = net.mul(x, gate, name="excite")
    normed = net.layer_norm(net.channel_scale(scaled, name="scale"), eps=1e-3, name="norm")
    shuffled = net.channel_shuffle(normed, groups=4, name="shuffle")
    left = net.slice(shuffled, 1, 6, name="left")
    pooled = net.adaptive_avg_pool(left, pool, name="pool")
    net.output(pooled)
    return net


@pytest.mark.parametrize("pool", [(3, 4), (7, 1)], ids=["overlapping-windows", "average-pool"])
def test_zoo_ops_export_to_the_same_numbers(pool: tuple[int, int]) -> None:
    """(3, 4) from (7, 5) has overlapping windows: MatMuls; (7, 1) is an AveragePool, which from_onnx
    reads back (it does not read adaptive pooling as MatMuls)."""
    g = zoo_ops_net(pool).graph
    random_params(g)
    x = np.random.default_rng(2).standard_normal(g.inputs[0].type.shape)
    expected = reference(g, x)
    assert rel_err(evaluate_float64(g, x), expected) <= FLOAT64_MODEL
    assert rel_err(run_onnxruntime(g, x), expected) <= FLOAT32
    if pool == (3, 4):
        return
    back = convc.from_onnx(to_onnx(in_dtype(g, "float64")).SerializeToString())
    assert rel_err(reference(back, x), expected) <= budget("float64", whole_model=True)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(1, 9), ow=st.integers(1, 9))
def test_adaptive_avg_pool_exports_for_every_size(h: int, w: int, oh: int, ow: int) -> None:
    net = Network("adaptive")
    net.output(net.adaptive_avg_pool(net.input((1, 2, h, w)), (oh, ow), name="pool"))
    x = np.random.default_rng(h * 100 + w).standard_normal((1, 2, h, w))
    assert rel_err(evaluate_float64(net.graph, x), reference(net.graph, x)) <= FLOAT64
