"""The op-schema table: the single source of shape inference, attribute validation, parameter shapes
and multiply-accumulate counts. The DSL, the verifier, the summary and every backend read it.

A node's inputs are its activation operands followed by its parameter operands (one per slot that
`OpSchema.params` names, in order). `infer` raises `InvalidNode` with a message that the caller
prefixes with the op and node name, e.g. "conv2d 'features.0': kernel 11x11 does not fit ...".
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convc.errors import ConvcError
from convc.types import DTYPES, TensorType


class InvalidNode(ConvcError):
    """Raised by schema functions; callers re-raise with the node's op and name in front."""


Attrs = dict[str, Any]
Shape = tuple[int, ...]

# Epilogue steps a fused conv/linear applies before its store, in order. ("add",) consumes the next
# extra activation input (a residual); the others are activations with an optional parameter.
EPILOGUE_ACTIVATIONS = {"relu": 0, "leaky_relu": 1, "sigmoid": 0, "tanh": 0, "elu": 1}
ACTIVATION_OPS = ("relu", "leaky_relu", "sigmoid", "tanh", "elu")
CONV_ALGOS = ("direct", "im2col", "winograd_2x2", "winograd_4x4")
# Parameter slots that are statistics, not learned weights (torch calls them buffers and does not count
# them in model.parameters(); summaries follow torch so counts match published ones).
BUFFER_SLOTS = frozenset({"running_mean", "running_var"})


@dataclass(frozen=True)
class OpSchema:
    """What an op is: its attributes, operands, output type, parameters and cost."""

    name: str
    attrs: dict[str, Callable[[Any], bool]]
    infer: Callable[[list[TensorType], Attrs], TensorType]
    num_inputs: Callable[[Attrs], int | None] = lambda a: 1  # None: one or more (variadic)
    params: Callable[[list[TensorType], Attrs], dict[str, Shape]] = lambda ins, a: {}
    macs: Callable[[list[TensorType], TensorType, Attrs], int] = lambda ins, out, a: 0
    doc: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)


SCHEMAS: dict[str, OpSchema] = {}


def register_op(schema: OpSchema) -> OpSchema:
    SCHEMAS[schema.name] = schema
    return schema


def schema_of(op: str) -> OpSchema:
    try:
        return SCHEMAS[op]
    except KeyError:
        raise InvalidNode(f"unknown op {op!r}; known ops: {', '.join(sorted(SCHEMAS))}") from None


# ---------------------------------------------------------------------------- attribute validators
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos_ints(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) > 0 and all(_is_int(i) and i > 0 for i in v)


def _nonneg_ints(v: Any) -> bool:
    return isinstance(v, tuple) and all(_is_int(i) and i >= 0 for i in v)


def _pad_pairs(v: Any) -> bool:
    return isinstance(v, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and all(_is_int(i) and i >= 0 for i in p) for p in v
    )


def _epilogue(v: Any) -> bool:
    if not isinstance(v, tuple):
        return False
    for step in v:
        if not isinstance(step, tuple) or not step:
            return False
        kind, args = step[0], step[1:]
        if kind == "add":
            if args:
                return False
        elif kind in EPILOGUE_ACTIVATIONS:
            if len(args) != EPILOGUE_ACTIVATIONS[kind] or not all(_is_num(a) for a in args):
                return False
        else:
            return False
    return True


def _algo(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def fmt_dims(dims: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in dims)


def fmt_padding(pad: tuple[tuple[int, int], ...]) -> str:
    flat = {p for pair in pad for p in pair}
    if len(flat) == 1:
        return str(flat.pop())
    if all(lo == hi for lo, hi in pad):
        return fmt_dims(tuple(lo for lo, _ in pad))
    return str(pad)


def epilogue_extra_inputs(attrs: Attrs) -> int:
    return sum(1 for step in attrs.get("epilogue", ()) if step[0] == "add")


def _check_residuals(ins: list[TensorType], out: TensorType) -> None:
    for r in ins[1:]:
        if r.shape != out.shape:
            raise InvalidNode(f"residual operand {r} does not match the output {out}")


def _rank(x: TensorType, rank: int, layout: str) -> None:
    if x.rank != rank:
        raise InvalidNode(f"expects a {rank}D ({layout}) input, got {x}")


# ---------------------------------------------------------------------------- convolution
SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def conv_output_size(size: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _conv_infer(nd: int) -> Callable[[list[TensorType], Attrs], TensorType]:
    def infer(ins: list[TensorType], a: Attrs) -> TensorType:
        x = ins[0]
        _rank(x, nd + 2, "N, C, " + SPATIAL[nd])
        for key in ("kernel", "stride", "dilation"):
            if len(a[key]) != nd:
                raise InvalidNode(f"{key} {a[key]} must have {nd} entries")
        if len(a["padding"]) != nd:
            raise InvalidNode(f"padding {a['padding']} must have {nd} (low, high) pairs")
        n, c = x.shape[:2]
        g, o = a["groups"], a["out_channels"]
        if c % g:
            raise InvalidNode(f"groups={g} does not divide the {c} input channels")
        if o % g:
            raise InvalidNode(f"groups={g} does not divide the {o} output channels")
        eff = tuple(d * (k - 1) + 1 for k, d in zip(a["kernel"], a["dilation"]))
        padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], a["padding"]))
        if any(e > p for e, p in zip(eff, padded)):
            what = f"kernel {fmt_dims(a['kernel'])}"
            if any(d > 1 for d in a["dilation"]):
                what += f" (dilated to {fmt_dims(eff)})"
            raise InvalidNode(
                f"{what} does not fit input {fmt_dims(x.shape[2:])} "
                f"with padding {fmt_padding(a['padding'])}"
            )
        sp = tuple(
            conv_output_size(s, k, st, d, lo, hi)
            for s, k, st, d, (lo, hi) in zip(x.shape[2:], a["kernel"], a["stride"], a["dilation"], a["padding"])
        )
        out = TensorType((n, o) + sp, x.dtype)
        _check_residuals(ins, out)
        return out

    return infer


def _conv_params(ins: list[TensorType], a: Attrs) -> dict[str, Shape]:
    c = ins[0].shape[1]
    p = {"weight": (a["out_channels"], c // a["groups"]) + tuple(a["kernel"])}
    if a["bias"]:
        p["bias"] = (a["out_channels"],)
    return p


def _conv_macs(ins: list[TensorType], out: TensorType, a: Attrs) -> int:
    c = ins[0].shape[1]
    return out.numel * (c // a["groups"]) * math.prod(a["kernel"])


CONV_ATTRS = {
    "out_channels": lambda v: _is_int(v) and v > 0,
    "kernel": _pos_ints,
    "stride": _pos_ints,
    "padding": _pad_pairs,
    "dilation": _pos_ints,
    "groups": lambda v: _is_int(v) and v > 0,
    "bias": _bool,
    "algo": _algo,
    "epilogue": _epilogue,
}

for _nd in (1, 2, 3):
    register_op(OpSchema(
        f"conv{_nd}d", CONV_ATTRS, _conv_infer(_nd),
        num_inputs=lambda a: 1 + epilogue_extra_inputs(a),
        params=_conv_params, macs=_conv_macs, tags=frozenset({"conv", "layer"}),
        doc=f"{_nd}D convolution, optionally with a fused epilogue",
    ))


# ---------------------------------------------------------------------------- pooling
def pool_output_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    span = size + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    return out


def _pool_infer(nd: int) -> Callable[[list[TensorType], Attrs], TensorType]:
    def infer(ins: list[TensorType], a: Attrs) -> TensorType:
        x = ins[0]
        _rank(x, nd + 2, "N, C, " + SPATIAL[nd])
        for key in ("kernel", "stride", "padding"):
            if len(a[key]) != nd:
                raise InvalidNode(f"{key} {a[key]} must have {nd} entries")
        for k, p in zip(a["kernel"], a["padding"]):
            if p > k // 2:
                raise InvalidNode(f"padding {fmt_dims(a['padding'])} must be at most half the kernel "
                                  f"{fmt_dims(a['kernel'])}")
        if any(k > s + 2 * p for k, s, p in zip(a["kernel"], x.shape[2:], a["padding"])):
            raise InvalidNode(f"kernel {fmt_dims(a['kernel'])} does not fit input {fmt_dims(x.shape[2:])} "
                              f"with padding {fmt_dims(a['padding'])}")
        sp = tuple(pool_output_size(s, k, st, p, a["ceil_mode"])
                   for s, k, st, p in zip(x.shape[2:], a["kernel"], a["stride"], a["padding"]))
        return x.with_shape(x.shape[:2] + sp)

    return infer


POOL_ATTRS = {"kernel": _pos_ints, "stride": _pos_ints, "padding": _nonneg_ints, "ceil_mode": _bool}
for _nd in (1, 2, 3):
    register_op(OpSchema(f"max_pool{_nd}d", POOL_ATTRS, _pool_infer(_nd), tags=frozenset({"pool"}),
                         doc=f"{_nd}D max pooling"))
    register_op(OpSchema(f"avg_pool{_nd}d", {**POOL_ATTRS, "count_include_pad": _bool}, _pool_infer(_nd),
                         tags=frozenset({"pool"}), doc=f"{_nd}D average pooling"))


def _global_pool_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    if x.rank < 3:
        raise InvalidNode(f"expects an (N, C, spatial...) input, got {x}")
    return x.with_shape(x.shape[:2] + (1,) * (x.rank - 2))


register_op(OpSchema("global_avg_pool", {}, _global_pool_infer, tags=frozenset({"pool"}),
                     doc="mean over all spatial positions, keeping them as size 1"))
register_op(OpSchema("global_max_pool", {}, _global_pool_infer, tags=frozenset({"pool"}),
                     doc="max over all spatial positions, keeping them as size 1"))


# ---------------------------------------------------------------------------- normalization
def _channels_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if ins[0].rank < 2:
        raise InvalidNode(f"expects an (N, C, ...) input, got {ins[0]}")
    return ins[0]


def _per_channel(*slots: str) -> Callable[[list[TensorType], Attrs], dict[str, Shape]]:
    return lambda ins, a: {s: (ins[0].shape[1],) for s in slots}


register_op(OpSchema(
    "batch_norm", {"eps": lambda v: _is_num(v) and v > 0}, _channels_infer,
    params=_per_channel("weight", "bias", "running_mean", "running_var"),
    doc="inference batch norm: (x - mean) / sqrt(var + eps) * weight + bias",
))
register_op(OpSchema(
    "scale_shift", {}, _channels_infer, params=_per_channel("weight", "bias"),
    doc="per-channel x * weight + bias (a batch norm with nothing to fold into)",
))


def _lrn_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if ins[0].rank < 3:
        raise InvalidNode(f"expects an (N, C, spatial...) input, got {ins[0]}")
    return ins[0]


register_op(OpSchema(
    "lrn",
    {"size": lambda v: _is_int(v) and v > 0, "alpha": _is_num, "beta": _is_num, "k": _is_num},
    _lrn_infer, doc="local response norm across channels: x / (k + alpha/size * sum x^2)^beta",
))


# ---------------------------------------------------------------------------- elementwise
def _same(ins: list[TensorType], a: Attrs) -> TensorType:
    return ins[0]


register_op(OpSchema("relu", {}, _same, tags=frozenset({"activation"}), doc="max(x, 0)"))
register_op(OpSchema("sigmoid", {}, _same, tags=frozenset({"activation"}), doc="1 / (1 + exp(-x))"))
register_op(OpSchema("tanh", {}, _same, tags=frozenset({"activation"}), doc="tanh(x)"))
register_op(OpSchema("leaky_relu", {"negative_slope": _is_num}, _same, tags=frozenset({"activation"}),
                     doc="x if x > 0 else negative_slope * x"))
register_op(OpSchema("elu", {"alpha": _is_num}, _same, tags=frozenset({"activation"}),
                     doc="x if x > 0 else alpha * (exp(x) - 1)"))
register_op(OpSchema("dropout", {"p": lambda v: _is_num(v) and 0 <= v < 1}, _same,
                     doc="identity at inference"))
register_op(OpSchema("identity", {}, _same, doc="returns its input"))


def _maxout_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    if x.rank < 2:
        raise InvalidNode(f"expects an (N, C, ...) input, got {x}")
    if x.shape[1] % a["k"]:
        raise InvalidNode(f"k={a['k']} does not divide the {x.shape[1]} channels")
    return x.with_shape((x.shape[0], x.shape[1] // a["k"]) + x.shape[2:])


register_op(OpSchema("maxout", {"k": lambda v: _is_int(v) and v > 0}, _maxout_infer,
                     doc="out[:, c] = max(x[:, c*k : (c+1)*k]): max over k consecutive channels"))


def _softmax_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if not 0 <= a["axis"] < ins[0].rank:
        raise InvalidNode(f"axis {a['axis']} is out of range for {ins[0]}")
    return ins[0]


register_op(OpSchema("softmax", {"axis": _is_int}, _softmax_infer, doc="exp(x) / sum exp(x) along axis"))


def _add_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    a_, b_ = ins
    if a_.shape != b_.shape:
        detail = ""
        if a_.rank == b_.rank and a_.rank >= 2 and a_.shape[1] != b_.shape[1]:
            detail = f" (channels {a_.shape[1]} vs {b_.shape[1]})"
        raise InvalidNode(f"operands have different shapes {a_} and {b_}{detail}")
    if a_.dtype != b_.dtype:
        raise InvalidNode(f"operands have different dtypes {a_} and {b_}")
    return a_


register_op(OpSchema("add", {}, _add_infer, num_inputs=lambda a: 2, doc="elementwise sum (residual)"))


def _bias_add_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    return ins[0]


register_op(OpSchema("bias_add", {}, _bias_add_infer, params=lambda ins, a: {"bias": ins[0].shape[1:]},
                     doc="adds a learned bias of the input's per-example shape (AlphaGo's per-position bias)"))


def _concat_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    ax = a["axis"]
    first = ins[0]
    if not 0 < ax < first.rank:
        raise InvalidNode(f"axis {ax} is out of range for {first} (the batch axis 0 cannot be joined)")
    for t in ins[1:]:
        if t.rank != first.rank or t.shape[:ax] + t.shape[ax + 1:] != first.shape[:ax] + first.shape[ax + 1:]:
            raise InvalidNode(f"operands {first} and {t} differ outside axis {ax}")
        if t.dtype != first.dtype:
            raise InvalidNode(f"operands have different dtypes {first} and {t}")
    total = sum(t.shape[ax] for t in ins)
    return first.with_shape(first.shape[:ax] + (total,) + first.shape[ax + 1:])


register_op(OpSchema("concat", {"axis": _is_int}, _concat_infer, num_inputs=lambda a: None,
                     doc="joins its operands along axis (channels by default)"))


# ---------------------------------------------------------------------------- dense layers
def _flatten_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    s = a["start_dim"]
    if not 0 < s < max(x.rank, 2):
        raise InvalidNode(f"start_dim {s} is out of range for {x}")
    return x.with_shape(x.shape[:s] + (math.prod(x.shape[s:]),))


register_op(OpSchema("flatten", {"start_dim": _is_int}, _flatten_infer,
                     doc="merges every axis from start_dim on into one"))


def _linear_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    if x.rank != 2:
        hint = "; insert flatten() before it" if x.rank > 2 else ""
        raise InvalidNode(f"expects a 2D (N, features) input, got {x}{hint}")
    out = x.with_shape((x.shape[0], a["out_features"]))
    _check_residuals(ins, out)
    return out


def _linear_params(ins: list[TensorType], a: Attrs) -> dict[str, Shape]:
    p = {"weight": (a["out_features"], ins[0].shape[1])}
    if a["bias"]:
        p["bias"] = (a["out_features"],)
    return p


register_op(OpSchema(
    "linear",
    {"out_features": lambda v: _is_int(v) and v > 0, "bias": _bool, "epilogue": _epilogue},
    _linear_infer, num_inputs=lambda a: 1 + epilogue_extra_inputs(a), params=_linear_params,
    macs=lambda ins, out, a: out.numel * ins[0].shape[1], tags=frozenset({"layer"}),
    doc="fully connected: x @ weight.T + bias, optionally with a fused epilogue",
))


# ---------------------------------------------------------------------------- graph boundary
def _input_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    return TensorType(a["shape"], a["dtype"])


register_op(OpSchema(
    "input", {"shape": _pos_ints, "dtype": lambda v: v in DTYPES}, _input_infer,
    num_inputs=lambda a: 0, doc="a graph input",
))
# A parameter's type comes from Graph.params; the verifier checks the two agree.
register_op(OpSchema("param", {}, lambda ins, a: TensorType((), "float32"), num_inputs=lambda a: 0,
                     doc="a named parameter tensor"))

