"""The DSL: a functional, eager builder. Each call adds one node and returns a typed `Value`.

    net = Network("tiny", seed=0)
    x = net.input((1, 3, 32, 32))
    with net.scope("features"):
        y = net.relu(net.conv2d(x, 16, 3, padding=1, name="0"))   # params 'features.0.weight', '.bias'
    net.output(net.linear(net.flatten(y), 10, name="fc"))

Shapes are checked as the network is written: a bad layer raises a DefinitionError naming it.
Parameters get seeded He initialization (independent of construction order) and load by name.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from convc.dsl_layers import ModernLayers
from convc.errors import DefinitionError
from convc.ir import Graph, Node
from convc.limits import check_shape
from convc.ops import ACTIVATION_OPS, InvalidNode, schema_of
from convc.params import load_params
from convc.types import TensorType, check_dtype

IntOrTuple = int | Sequence[int]


@dataclass(frozen=True)
class Value:
    """A symbolic tensor: the output of one node of `net`."""

    net: Network
    name: str
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __add__(self, other: Value) -> Value:
        return self.net.add(self, other)

    def __repr__(self) -> str:
        return f"%{self.name} : {self.type}"


def as_int(v: Any) -> int | None:
    """`v` as an int when it is an integer (Python or NumPy, never a bool), else None."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        return None
    return int(v)


def _tuple(v: IntOrTuple, n: int, what: str, where: str) -> tuple[int, ...]:
    single = as_int(v)
    if single is not None:
        return (single,) * n
    t = tuple(as_int(i) for i in v) if isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) else ()
    if len(t) != n or any(i is None for i in t):
        raise DefinitionError(f"{where}: {what} must be an int or {n} ints, got {v!r}")
    return t  # type: ignore[return-value]


def _positive_int(v: Any, what: str, where: str) -> int:
    i = as_int(v)
    if i is None or i <= 0:
        raise DefinitionError(f"{where}: {what}={v!r} must be a positive int")
    return i


def _flag(v: Any, what: str, where: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise DefinitionError(f"{where}: {what}={v!r} must be True or False")
    return bool(v)


def _real(v: Any, what: str, where: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(v):
        raise DefinitionError(f"{where}: {what}={v!r} must be a finite real number")
    return float(v)


def _axis(v: Any, rank: int, what: str, where: str) -> int:
    """An axis in [-rank, rank) as its non-negative index; anything else is refused (never wrapped)."""
    i = as_int(v)
    if i is None or not -rank <= i < rank:
        raise DefinitionError(f"{where}: {what}={v!r} is out of range for a rank-{rank} input "
                              f"(valid: {-rank} to {rank - 1})")
    return i % rank


def resolve_padding(padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], spatial: tuple[int, ...], where: str) -> tuple:
    """int | per-axis ints | per-axis (low, high) pairs | 'same' | 'valid'  ->  ((lo, hi), ...)."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":  # output = ceil(input / stride), the extra pixel on the high side
            pads = []
            for size, k, s, d in zip(spatial, kernel, stride, dilation):
                total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise DefinitionError(f"{where}: padding {padding!r} is not valid; use an int, a tuple, "
                              f"'same' or 'valid'")
    if as_int(padding) is not None:
        pairs = ((as_int(padding), as_int(padding)),) * n
    else:
        try:
            items = tuple(padding)
        except TypeError:
            items = ()
        if len(items) != n:
            raise DefinitionError(f"{where}: padding {padding!r} must be an int, {n} ints, {n} (low, high) "
                                  f"pairs, 'same' or 'valid'")
        pairs = tuple((p, p) if as_int(p) is not None else
                      tuple(p) if isinstance(p, (Sequence, np.ndarray)) and not isinstance(p, str) else (p,)
                      for p in items)
    if not all(len(p) == 2 and all(as_int(i) is not None and i >= 0 for i in p) for p in pairs):
        raise DefinitionError(f"{where}: padding {padding!r} must be non-negative integers")
    return tuple((as_int(lo), as_int(hi)) for lo, hi in pairs)


class Network(ModernLayers):
    """Builds a Graph layer by layer; `net.graph` is the result (more layers in dsl_layers.py)."""

    def __init__(self, name: str = "net", seed: int = 0, init: bool = True) -> None:
        """`init=False` builds the structure only: every parameter is a read-only zero broadcast that
        costs no memory (for summaries and listings of large models)."""
        self.graph = Graph(name)
        self.seed = seed
        self.init = init
        self._scope: list[str] = []
        self._counters: list[list[int] | None] = []  # auto-index per sequential scope

    @property
    def name(self) -> str:
        return self.graph.name

    # ------------------------------------------------------------------ naming
    @contextmanager
    def scope(self, name: str | int) -> Iterator[None]:
        """Prefixes layer names: `with net.scope("layer1"): ... name="conv1"` -> 'layer1.conv1'."""
        self._scope.append(str(name))
        self._counters.append(None)
        try:
            yield
        finally:
            self._scope.pop()
            self._counters.pop()

    @contextmanager
    def sequential(self, name: str) -> Iterator[None]:
        """Like torch's nn.Sequential: unnamed layers inside get '<name>.0', '<name>.1', ..."""
        self._scope.append(name)
        self._counters.append([0])
        try:
            yield
        finally:
            self._scope.pop()
            self._counters.pop()

    def _layer_name(self, op: str, name: str | None, advance: bool = True) -> str:
        """The full dotted name of the next layer; `advance=False` only previews it (for errors)."""
        counter = self._counters[-1] if self._counters else None
        if name is None and counter is not None:
            name = str(counter[0])
        if counter is not None and advance:
            counter[0] += 1
        full = ".".join(self._scope + [name or op])
        return full if name is not None else self.graph.fresh_name(full)

    def _where(self, op: str, name: str | None) -> str:
        return f"{op} '{self._layer_name(op, name, advance=False)}'"

    # ------------------------------------------------------------------ core
    def _emit(self, op: str, inputs: Sequence[Value], attrs: dict[str, Any], name: str | None,
              init: dict[str, str] | None = None) -> Value:
        """Infers the type, creates the parameters, adds the node; errors name the layer."""
        full = self._layer_name(op, name)
        where = f"{op} '{full}'"
        self._check_operands(inputs, where)
        if full in self.graph:
            raise DefinitionError(f"{where}: a layer of that name already exists")
        schema = schema_of(op)
        types = [v.type for v in inputs]
        try:
            out = schema.infer(types, attrs)
            slots = schema.params(types, attrs)
        except InvalidNode as e:
            raise DefinitionError(f"{where}: {e}") from None
        if self.init:  # refused before a byte is allocated
            for slot, shape in slots.items():
                check_shape(tuple(shape), "float32", f"{where}: parameter '{full}.{slot}' {tuple(shape)}")
        param_names = []
        for slot, shape in slots.items():
            pname = f"{full}.{slot}"
            self.graph.add_param(pname, self._init_param(pname, slot, shape, (init or {}).get(slot)))
            param_names.append(pname)
        self.graph.add(Node(full, op, tuple(v.name for v in inputs) + tuple(param_names), attrs, out))
        return Value(self, full, out)

    def _check_operands(self, inputs: Sequence[Any], where: str) -> None:
        for v in inputs:
            if not isinstance(v, Value) or v.net is not self:
                raise DefinitionError(f"{where}: operand {v!r} is not a value of network '{self.name}'")

    def _init_param(self, pname: str, slot: str, shape: tuple[int, ...], how: str | None) -> np.ndarray:
        if not self.init:
            return np.broadcast_to(np.float32(0.0), shape)
        rng = np.random.default_rng([self.seed, zlib.crc32(pname.encode())])
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
        how = how or {"weight": "he", "bias": "uniform_fan_in", "running_var": "ones"}.get(slot, "zeros")
        if how == "he":  # drawn in float32: 3x faster, which matters for VGG's 100M-weight layers
            weight = rng.standard_normal(shape, dtype=np.float32)
            weight *= np.float32(math.sqrt(2.0 / fan_in))
            return weight
        if how == "uniform_fan_in":  # torch's default bias init, so biases are never all zero in tests
            bound = 1.0 / math.sqrt(max(self._fan_in_of_layer(pname), 1))
            return rng.uniform(-bound, bound, shape).astype(np.float32)
        if how == "ones":
            return np.ones(shape, np.float32)
        return np.zeros(shape, np.float32)

    def _fan_in_of_layer(self, pname: str) -> int:
        w = self.graph.params.get(pname.rsplit(".", 1)[0] + ".weight")
        return 1 if w is None else math.prod(w.shape[1:])

    # ------------------------------------------------------------------ graph boundary
    def input(self, shape: Sequence[int], dtype: str = "float32", name: str = "x") -> Value:
        dims = tuple(as_int(d) for d in shape) if isinstance(shape, (Sequence, np.ndarray)) else ()
        if not dims or not all(d is not None and d > 0 for d in dims):
            raise DefinitionError(f"input '{name}': shape {shape!r} must be positive integers")
        shape = dims  # type: ignore[assignment]
        dtype = check_dtype(dtype, what=f"input '{name}' dtype")
        return self._emit("input", [], {"shape": shape, "dtype": dtype}, name)

    def output(self, *values: Value) -> Network:
        for v in values:
            if not isinstance(v, Value) or v.net is not self or v.name not in self.graph:
                owner = f" (it belongs to another network named '{v.net.name}')" if isinstance(v, Value) else ""
                raise DefinitionError(f"output {v!r} is not a value of network '{self.name}'{owner}")
            self.graph.outputs.append(v.name)
        return self

    # ------------------------------------------------------------------ convolution
    def conv(self, x: Value, out_channels: int, kernel: IntOrTuple, stride: IntOrTuple = 1,
             padding: Any = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
             name: str | None = None, *, ndim: int) -> Value:
        op = f"conv{ndim}d"
        where = self._where(op, name)
        k = _tuple(kernel, ndim, "kernel", where)
        s = _tuple(stride, ndim, "stride", where)
        d = _tuple(dilation, ndim, "dilation", where)
        for what, t in (("kernel", k), ("stride", s), ("dilation", d)):
            if any(i <= 0 for i in t):
                raise DefinitionError(f"{where}: {what} {t} must be positive")
        groups = _positive_int(groups, "groups", where)
        out_channels = _positive_int(out_channels, "out_channels", where)
        spatial = x.shape[2:] if len(x.shape) == ndim + 2 else (1,) * ndim
        pad = resolve_padding(padding, k, s, d, spatial, where)
        attrs = {"out_channels": out_channels, "kernel": k, "stride": s, "padding": pad, "dilation": d,
                 "groups": groups, "bias": _flag(bias, "bias", where), "algo": None, "epilogue": ()}
        return self._emit(op, [x], attrs, name)

    def conv1d(self, x: Value, out_channels: int, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.conv(x, out_channels, kernel, ndim=1, **kw)

    def conv2d(self, x: Value, out_channels: int, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.conv(x, out_channels, kernel, ndim=2, **kw)

    def conv3d(self, x: Value, out_channels: int, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.conv(x, out_channels, kernel, ndim=3, **kw)

    # ------------------------------------------------------------------ pooling
    def pool(self, kind: str, x: Value, kernel: IntOrTuple, stride: IntOrTuple | None = None,
             padding: IntOrTuple = 0, ceil_mode: bool = False, count_include_pad: bool = True,
             name: str | None = None, *, ndim: int) -> Value:
        op = f"{kind}_pool{ndim}d"
        where = self._where(op, name)
        k = _tuple(kernel, ndim, "kernel", where)
        s = k if stride is None else _tuple(stride, ndim, "stride", where)
        p = _tuple(padding, ndim, "padding", where)
        if any(i <= 0 for i in k + s):
            raise DefinitionError(f"{where}: kernel {k} and stride {s} must be positive")
        if any(i < 0 for i in p):
            raise DefinitionError(f"{where}: padding {p} must be non-negative")
        attrs: dict[str, Any] = {"kernel": k, "stride": s, "padding": p,
                                 "ceil_mode": _flag(ceil_mode, "ceil_mode", where)}
        if kind == "avg":
            attrs["count_include_pad"] = _flag(count_include_pad, "count_include_pad", where)
        return self._emit(op, [x], attrs, name)

    def max_pool1d(self, x: Value, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.pool("max", x, kernel, ndim=1, **kw)

    def max_pool2d(self, x: Value, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.pool("max", x, kernel, ndim=2, **kw)

    def max_pool3d(self, x: Value, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.pool("max", x, kernel, ndim=3, **kw)

    def avg_pool1d(self, x: Value, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.pool("avg", x, kernel, ndim=1, **kw)

    def avg_pool2d(self, x: Value, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.pool("avg", x, kernel, ndim=2, **kw)

    def avg_pool3d(self, x: Value, kernel: IntOrTuple, **kw: Any) -> Value:
        return self.pool("avg", x, kernel, ndim=3, **kw)

    def global_avg_pool(self, x: Value, name: str | None = None) -> Value:
        return self._emit("global_avg_pool", [x], {}, name)

    def global_max_pool(self, x: Value, name: str | None = None) -> Value:
        return self._emit("global_max_pool", [x], {}, name)

    # ------------------------------------------------------------------ normalization
    def batch_norm(self, x: Value, eps: float = 1e-5, name: str | None = None) -> Value:
        if _real(eps, "eps", self._where("batch_norm", name)) <= 0:
            raise DefinitionError(f"{self._where('batch_norm', name)}: eps={eps!r} must be positive")
        return self._emit("batch_norm", [x], {"eps": float(eps)}, name,
                          init={"weight": "ones", "bias": "zeros"})

    def lrn(self, x: Value, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
            name: str | None = None) -> Value:
        where = self._where("lrn", name)
        return self._emit("lrn", [x], {"size": _positive_int(size, "size", where),
                                        "alpha": _real(alpha, "alpha", where), "beta": _real(beta, "beta", where),
                                        "k": _real(k, "k", where)}, name)

    # ------------------------------------------------------------------ elementwise
    def activation(self, x: Value, kind: str, name: str | None = None, **kw: Any) -> Value:
        """`net.activation(x, "leaky_relu", negative_slope=0.1)`: any activation by name."""
        if kind not in ACTIVATION_OPS:
            raise DefinitionError(f"{self._where('activation', name)}: unknown activation {kind!r}; "
                                  f"choose one of {', '.join(ACTIVATION_OPS)}")
        return getattr(self, kind)(x, name=name, **kw)

    def relu(self, x: Value, name: str | None = None) -> Value:
        return self._emit("relu", [x], {}, name)

    def leaky_relu(self, x: Value, negative_slope: float = 0.01, name: str | None = None) -> Value:
        slope = _real(negative_slope, "negative_slope", self._where("leaky_relu", name))
        return self._emit("leaky_relu", [x], {"negative_slope": slope}, name)

    def sigmoid(self, x: Value, name: str | None = None) -> Value:
        return self._emit("sigmoid", [x], {}, name)

    def tanh(self, x: Value, name: str | None = None) -> Value:
        return self._emit("tanh", [x], {}, name)

    def elu(self, x: Value, alpha: float = 1.0, name: str | None = None) -> Value:
        return self._emit("elu", [x], {"alpha": _real(alpha, "alpha", self._where("elu", name))}, name)

    def maxout(self, x: Value, k: int, name: str | None = None) -> Value:
        return self._emit("maxout", [x], {"k": _positive_int(k, "k", self._where("maxout", name))}, name)

    def dropout(self, x: Value, p: float = 0.5, name: str | None = None) -> Value:
        if not 0 <= _real(p, "p", self._where("dropout", name)) < 1:
            raise DefinitionError(f"{self._where('dropout', name)}: rate p={p!r} must be in [0, 1)")
        return self._emit("dropout", [x], {"p": float(p)}, name)

    def softmax(self, x: Value, axis: int = 1, name: str | None = None) -> Value:
        self._check_operands([x], self._where("softmax", name))
        axis = _axis(axis, len(x.shape), "axis", self._where("softmax", name))
        return self._emit("softmax", [x], {"axis": axis}, name)

    def add(self, a: Value, b: Value, name: str | None = None) -> Value:
        return self._emit("add", [a, b], {}, name)

    def bias_add(self, x: Value, name: str | None = None) -> Value:
        return self._emit("bias_add", [x], {}, name)

    def concat(self, values: Sequence[Value], axis: int = 1, name: str | None = None) -> Value:
        values = list(values)
        if not values:
            raise DefinitionError(f"{self._where('concat', name)}: needs at least one operand")
        self._check_operands(values, self._where("concat", name))
        rank = len(values[0].shape)
        return self._emit("concat", values, {"axis": _axis(axis, rank, "axis", self._where("concat", name))},
                          name)

    # ------------------------------------------------------------------ dense
    def flatten(self, x: Value, start_dim: int = 1, name: str | None = None) -> Value:
        self._check_operands([x], self._where("flatten", name))
        start = as_int(start_dim)
        if start is None:
            raise DefinitionError(f"{self._where('flatten', name)}: start_dim={start_dim!r} must be an int")
        if -len(x.shape) <= start < 0:  # counted from the end, as torch.flatten does
            start += len(x.shape)
        return self._emit("flatten", [x], {"start_dim": start}, name)

    def linear(self, x: Value, out_features: int, bias: bool = True, name: str | None = None) -> Value:
        where = self._where("linear", name)
        return self._emit("linear", [x], {"out_features": _positive_int(out_features, "out_features", where),
                                          "bias": _flag(bias, "bias", where), "epilogue": ()}, name)

    # ------------------------------------------------------------------ parameters
    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.graph.params)

    def load_state_dict(self, mapping: Mapping[str, Any]) -> None:
        """Loads arrays or torch tensors by name; reports every bad key at once."""
        load_params(self.graph, mapping)

    def save(self, path: str) -> None:
        """Writes `<path>.json` (the graph) and `<path>.npz` (the parameters); `convc.load` reads them."""
        from convc.serialize import save

        save(self.graph, path)

    def randomize_batch_norm(self, seed: int = 0) -> None:
        """Random BN statistics and affine terms, so tests see non-trivial normalization."""
        rng = np.random.default_rng(seed)
        for node in self.graph.nodes("batch_norm"):
            c = node.type.shape[1]
            w, b, m, v = node.inputs[1:]
            self.graph.params[w] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            self.graph.params[b] = rng.normal(0, 0.2, c).astype(np.float32)
            self.graph.params[m] = rng.normal(0, 0.2, c).astype(np.float32)
            self.graph.params[v] = rng.uniform(0.5, 2.0, c).astype(np.float32)
