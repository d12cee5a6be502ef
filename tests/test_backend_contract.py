"""The one backend contract: every built-in backend is a Backend with a lowering table and a build, and a
backend written against the contract alone (no built-in code) compiles and runs a graph."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convc
from convc.backend import Backend, Capabilities, LoweringContext, LoweringTable, registrar
from convc.errors import BackendError
from convc.interpreter import InterpretedModel, Step, kernel_lowerings
from convc.ir import Graph, Node
from convc.ops import CONV_ALGOS, CONV_OPS
from convc.registry import get_backend


@pytest.mark.parametrize("name", ["numpy", "torch", "torch-compile", "triton"])
def test_every_builtin_backend_lowers_every_op_it_declares(name: str) -> None:
    backend = get_backend(name)
    assert isinstance(backend, Backend) and backend.build is not None
    assert backend.capabilities.ops <= {op for op, _ in backend.lowerings}


@pytest.mark.parametrize("name", ["numpy", "torch", "torch-compile", "triton"])
def test_a_backend_s_conv_algorithms_are_named_by_convc_ops_and_lowered(name: str) -> None:
    backend = get_backend(name)
    algos = backend.capabilities.conv_algos
    library_chooses = len(algos) == 1 and algos[0] not in CONV_ALGOS  # torch's "cudnn"
    assert library_chooses or set(algos) <= set(CONV_ALGOS)
    for op in CONV_OPS:
        lowered = {a for o, a in backend.lowerings if o == op}
        assert lowered == ({None} if library_chooses else set(algos))


def relu_net() -> convc.Network:
    net = convc.Network("relu_net")
    x = net.input((1, 3))
    net.output(net.relu(net.add(x, x)))
    return net


# A backend that knows two ops and lowers each node to a closure over the node's name.
LOWERINGS: LoweringTable[LoweringContext, Step] = {}
lowering = registrar(LOWERINGS)
SEEN: list[str] = []


@lowering("relu")
def lower_relu(node: Node, ctx: LoweringContext) -> Step:
    def run(args: list[Any]) -> Any:
        SEEN.append(node.name)
        return np.maximum(args[0], 0)
    return run


@lowering("add")
def lower_add(node: Node, ctx: LoweringContext) -> Step:
    return lambda args: args[0] + args[1]


def build(backend: Backend[LoweringContext, Step], graph: Graph, *, dtype: str, **options: Any) -> Any:
    return InterpretedModel(backend, graph, dtype, to_native=lambda a, d: np.asarray(a, d),
                            to_numpy=np.asarray, cast=lambda a, d: np.asarray(a, d))


def test_a_backend_written_against_the_contract_runs_a_graph() -> None:
    mine = Backend("mine", Capabilities(ops=frozenset({"relu", "add"})), LOWERINGS, build=build)
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    SEEN.clear()
    [y] = mine.compile(relu_net().graph).run(x)
    np.testing.assert_array_equal(y, np.maximum(2 * x, 0))
    assert len(SEEN) == 1


def test_a_missing_lowering_names_the_node_and_the_choices() -> None:
    mine = Backend("mine", Capabilities(ops=frozenset({"relu", "add"})), {("relu", None): lower_relu},
                   build=build)
    with pytest.raises(BackendError, match=r"node 'add' \(add\): backend 'mine' has no kernel for add"):
        mine.compile(relu_net().graph)


def test_an_unset_algo_takes_the_backend_default_and_an_unknown_one_lists_the_algos() -> None:
    kernels = {("relu", "fast"): lambda node, args: np.maximum(args[0], 0),
               ("relu", "slow"): lambda node, args: np.maximum(args[0], 0) * 0}
    mine = Backend("mine", Capabilities(ops=frozenset({"relu"})), kernel_lowerings(kernels), build=build,
                   default_algo=lambda node, ctx: "fast")
    net = convc.Network("n")
    net.output(net.relu(net.input((1, 2))))
    x = np.array([[-1.0, 3.0]], np.float32)
    np.testing.assert_array_equal(mine.compile(net.graph).run(x)[0], [[0.0, 3.0]])
    g = net.graph.copy()
    relu = next(iter(g.nodes("relu")))
    g.replace_node(relu.replace(attrs={**relu.attrs, "algo": "fft"}))
    with pytest.raises(BackendError, match=r"has no algo 'fft'; choose one of fast, slow"):
        mine.compile(g)
