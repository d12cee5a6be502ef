"""The backend contract: every backend declares what it can run, lowers each node with a context through
one table keyed by (op, algo), and builds a CompiledModel from the lowered nodes its own way.

    LOWERINGS: LoweringTable = {}
    lowering = registrar(LOWERINGS)

    @lowering(("conv1d", "conv2d"), algo="im2col")
    def lower_conv_im2col(node: Node, ctx: LoweringContext) -> Step: ...   # Step: whatever `build` runs

    backend = Backend("mine", Capabilities(ops=frozenset({"conv1d", "conv2d"})), LOWERINGS, build=build_model)

`build(backend, graph, dtype=..., **options)` calls `backend.lower(node, ctx)` for each node, with a
context (a `LoweringContext` or a subclass carrying what its lowerings need), and runs the results however
it likes: the NumPy and torch backends interpret bound kernels, Triton binds kernel launches to a memory
plan. Because `build` receives the backend, a wrapper that swaps the lowerings reuses another backend's
`build` unchanged. A backend is found through the `convc.backends` entry-point group (or
`convc.registry.register_backend`); the core never imports one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from convc.errors import BackendError
from convc.ir import Graph, Node

LoweringKey = tuple[str, str | None]  # (op, conv algorithm or None)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can run; passes consult it (e.g. the algorithm choice picks only these)."""

    ops: frozenset[str]
    conv_algos: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    fused_epilogue: bool = True
    devices: tuple[str, ...] = ("cpu",)


@dataclass
class LoweringContext:
    """What every lowering may consult besides its node: the graph it sits in and the working dtype.
    A backend whose lowerings need more (a memory plan, a device) passes a subclass."""

    graph: Graph
    dtype: str


CtxIn = TypeVar("CtxIn", bound=LoweringContext, contravariant=True)
LoweredOut = TypeVar("LoweredOut", covariant=True)
Ctx = TypeVar("Ctx", bound=LoweringContext)
Lowered = TypeVar("Lowered")
Registered = TypeVar("Registered", bound=Callable[..., Any])


class Lowering(Protocol[CtxIn, LoweredOut]):
    """`lowering(node, ctx)` -> the backend's lowered form of `node` (a bound kernel, a list of launches)."""

    def __call__(self, node: Node, ctx: CtxIn, /) -> LoweredOut: ...


class Build(Protocol):
    """`build(backend, graph, dtype=..., **options)` -> a CompiledModel, lowering with `backend.lower`."""

    def __call__(self, backend: Any, graph: Graph, *, dtype: str, **options: Any) -> CompiledModel: ...


# One backend's lowerings, e.g. LoweringTable[NodeContext, list[Launch]] for Triton.
LoweringTable = dict[LoweringKey, Lowering[Ctx, Lowered]]


def registrar(table: dict[LoweringKey, Registered]
              ) -> Callable[[str | Iterable[str], str | None], Callable[[Registered], Registered]]:
    """A decorator factory that files functions in `table` under (op, algo) for one or several ops.

        LOWERINGS: LoweringTable = {}
        lowering = registrar(LOWERINGS)
        @lowering(("max_pool1d", "max_pool2d"))
        def lower_max_pool(node, ctx): ...
    """
    def register(ops: str | Iterable[str], algo: str | None = None) -> Callable[[Registered], Registered]:
        def file(fn: Registered) -> Registered:
            for op in (ops,) if isinstance(ops, str) else ops:
                table[(op, algo)] = fn
            return fn
        return file
    return register


def no_default_algo(node: Node, ctx: Any) -> str | None:
    return None


@dataclass
class Backend(Generic[Ctx, Lowered]):
    """A named lowering table plus the `build` that turns a verified graph into a CompiledModel."""

    name: str
    capabilities: Capabilities
    lowerings: Mapping[LoweringKey, Lowering[Ctx, Lowered]] = field(default_factory=dict)
    build: Build | None = None
    # The conv algorithm for a node whose attrs leave it open, when the table has no (op, None) entry.
    default_algo: Callable[[Node, Ctx], str | None] = no_default_algo
    description: str = ""
    # Named calibration probes: probe(dtype, *sizes) returns a call of one of this backend's kernels, ready
    # to time, so a cost model measures the kernels that run without importing the backend (the NumPy
    # backend's compiled Winograd transforms: passes/cpu_profile.py).
    probes: Mapping[str, Callable[..., Callable[[], object]]] = field(default_factory=dict)

    def algo_of(self, node: Node, ctx: Ctx) -> str | None:
        """The algo half of the table key that lowers `node`."""
        algo = node.attrs.get("algo")
        if algo is None and (node.op, None) not in self.lowerings:
            algo = self.default_algo(node, ctx)
        return algo

    def lowering_of(self, node: Node, ctx: Ctx) -> Lowering[Ctx, Lowered]:
        """The table entry for `node`; a missing one raises a BackendError listing what exists."""
        algo = self.algo_of(node, ctx)
        fn = self.lowerings.get((node.op, algo))
        if fn is None:
            where = f"node '{node.name}' ({node.op}): backend '{self.name}'"
            algos = sorted(a for op, a in self.lowerings if op == node.op and a)
            if algo is None:
                raise BackendError(f"{where} has no kernel for {node.op}"
                                   f"{'; choose an algo: ' + ', '.join(algos) if algos else ''}")
            raise BackendError(f"{where} has no algo {algo!r}; choose one of {', '.join(algos) or 'none'}")
        return fn

    def lower(self, node: Node, ctx: Ctx) -> Lowered:
        """`node` in this backend's lowered form."""
        return self.lowering_of(node, ctx)(node, ctx)

    def compile(self, graph: Graph, *, dtype: str = "float32", **options: Any) -> CompiledModel:
        if dtype not in self.capabilities.dtypes:
            raise BackendError(f"backend '{self.name}' does not support dtype {dtype}; it supports "
                               f"{', '.join(self.capabilities.dtypes)}")
        unsupported = sorted({n.op for n in graph.nodes()} - self.capabilities.ops - {"input", "param"})
        if unsupported:
            raise BackendError(f"backend '{self.name}' cannot run ops {', '.join(unsupported)} "
                               f"(in graph '{graph.name}')")
        if self.build is None:
            raise BackendError(f"backend '{self.name}' has no build function")
        return self.build(self, graph, dtype=dtype, **options)


class CompiledModel:
    """A runnable compiled graph. `model(*inputs)` takes and returns the backend's native arrays;
    `model.run(*arrays)` takes NumPy arrays and returns a list of NumPy arrays on any backend."""

    backend: str
    graph: Graph
    dtype: str
    pass_records: list[Any]  # what each pass did (convc.pass_manager.PassRecord), set by convc.compile
    results: dict[str, Any]  # what the passes published in PassContext.results, set by convc.compile

    @property
    def plan(self) -> Any:
        """The conv algorithm plan that choose_conv_algo published in the results (None if it did not run)."""
        return getattr(self, "results", {}).get("plan")

    @plan.setter
    def plan(self, value: Any) -> None:
        self.results = {**getattr(self, "results", {}), "plan": value}

    def __call__(self, *inputs: Any) -> Any:
        raise NotImplementedError

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError


def input_value_problem(value: Any) -> str | None:
    """Why `value` cannot be a run-time input (meta tensor, complex, text, objects, booleans), or None.

    Tensors that require grad are accepted: convc runs inference, so they are read as if detached."""
    device = getattr(getattr(value, "device", None), "type", None)
    if device == "meta":
        return "it is a meta-device tensor, which holds no data; create it on 'cpu' or 'cuda'"
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return None
    if hasattr(value, "is_complex"):  # a torch tensor
        kind = "c" if value.is_complex() else ("b" if str(dtype) == "torch.bool" else "f")
    else:
        kind = np.dtype(dtype).kind if isinstance(dtype, np.dtype) else "f"
    reasons = {"c": f"it holds complex values ({dtype}); convc computes with real numbers",
               "b": f"it holds booleans ({dtype}); pass real numbers", "U": f"it holds text ({dtype})",
               "S": f"it holds bytes ({dtype})", "O": "it holds Python objects (dtype object)",
               "V": f"it holds records ({dtype})", "M": f"it holds dates ({dtype})",
               "m": f"it holds time spans ({dtype})"}
    return reasons.get(kind)


def check_inputs(graph: Graph, inputs: tuple[Any, ...], backend: str) -> None:
    """Raises a BackendError naming the graph input whose count, shape, rank or kind of value is wrong."""
    expected = graph.inputs
    if len(inputs) != len(expected):
        raise BackendError(f"graph '{graph.name}' takes {len(expected)} input(s) "
                           f"({', '.join(n.name for n in expected)}), got {len(inputs)}")
    for node, value in zip(expected, inputs):
        why = input_value_problem(value)
        if why is not None:
            raise BackendError(f"input '{node.name}' of graph '{graph.name}' on backend '{backend}': {why}")
        shape = tuple(getattr(value, "shape", ()))
        if shape != node.type.shape:
            raise BackendError(f"input '{node.name}' of graph '{graph.name}' on backend '{backend}': "
                               f"expected shape {node.type.shape}, got {shape}")


def numpy_inputs(graph: Graph, inputs: tuple[Any, ...], backend: str) -> list[np.ndarray]:
    """What `run()` takes, as NumPy arrays: tensors are detached and copied to the host; values no backend
    can compute with are refused first, naming the input (see input_value_problem)."""
    from convc.params import to_numpy

    names = [n.name for n in graph.inputs] + [f"#{i}" for i in range(len(graph.inputs), len(inputs))]
    arrays = []
    for name, value in zip(names, inputs):
        why = input_value_problem(value)
        if why is None:
            try:
                arr = to_numpy(value)
            except (TypeError, ValueError) as e:
                why = f"it cannot be read as an array ({type(e).__name__}: {e})"
            else:
                why = input_value_problem(arr)
        if why is not None:
            raise BackendError(f"input '{name}' of graph '{graph.name}' on backend '{backend}': {why}")
        arrays.append(arr)
    return arrays
