"""Schemas of every other op: normalization, elementwise, dense layers, the graph boundary."""
from __future__ import annotations

import math
from collections.abc import Callable

from convc.ops.schema import (
    Attrs,
    InvalidNode,
    OpSchema,
    Shape,
    TensorType,
    check_residuals,
    epilogue_extra_inputs,
    is_bool,
    is_int,
    is_num,
    pos_ints,
    register_op,
    valid_epilogue,
)
from convc.types import DTYPES


# ---------------------------------------------------------------------------- normalization
def _channels_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if ins[0].rank < 2:
        raise InvalidNode(f"expects an (N, C, ...) input, got {ins[0]}")
    return ins[0]


def _per_channel(*slots: str) -> Callable[[list[TensorType], Attrs], dict[str, Shape]]:
    return lambda ins, a: {s: (ins[0].shape[1],) for s in slots}


register_op(OpSchema(
    "batch_norm", {"eps": lambda v: is_num(v) and v > 0}, _channels_infer,
    params=_per_channel("weight", "bias", "running_mean", "running_var"),
    doc="inference batch norm: (x - mean) / sqrt(var + eps) * weight + bias",
))
register_op(OpSchema(
    "scale_shift", {}, _channels_infer, params=_per_channel("weight", "bias"),
    doc="per-channel x * weight + bias (a batch norm with nothing to fold into)",
))


register_op(OpSchema(
    "channel_scale", {}, _channels_infer, params=_per_channel("weight"),
    macs=lambda ins, out, a: out.numel,
    doc="per-channel x * weight (ConvNeXt's layer scale; a conv or linear before it absorbs it)",
))
register_op(OpSchema(
    "layer_norm", {"eps": lambda v: is_num(v) and v > 0}, _channels_infer,
    params=_per_channel("weight", "bias"),
    doc="normalizes each position over its channels (axis 1): (x - mean) / sqrt(var + eps) * weight + bias "
        "(ConvNeXt's LayerNorm of a channels-last tensor)",
))


def _lrn_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if ins[0].rank < 3:
        raise InvalidNode(f"expects an (N, C, spatial...) input, got {ins[0]}")
    return ins[0]


register_op(OpSchema(
    "lrn",
    {"size": lambda v: is_int(v) and v > 0, "alpha": is_num, "beta": is_num, "k": is_num},
    _lrn_infer, doc="local response norm across channels: x / (k + alpha/size * sum x^2)^beta",
))


# ---------------------------------------------------------------------------- elementwise
def _same(ins: list[TensorType], a: Attrs) -> TensorType:
    return ins[0]


register_op(OpSchema("relu", {}, _same, tags=frozenset({"activation"}), doc="max(x, 0)"))
register_op(OpSchema("sigmoid", {}, _same, tags=frozenset({"activation"}), doc="1 / (1 + exp(-x))"))
register_op(OpSchema("tanh", {}, _same, tags=frozenset({"activation"}), doc="tanh(x)"))
register_op(OpSchema("leaky_relu", {"negative_slope": is_num}, _same, tags=frozenset({"activation"}),
                     doc="x if x > 0 else negative_slope * x"))
register_op(OpSchema("elu", {"alpha": is_num}, _same, tags=frozenset({"activation"}),
                     doc="x if x > 0 else alpha * (exp(x) - 1)"))
register_op(OpSchema("dropout", {"p": lambda v: is_num(v) and 0 <= v < 1}, _same,
                     doc="identity at inference"))
register_op(OpSchema("identity", {}, _same, doc="returns its input"))


def _maxout_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    if x.rank < 2:
        raise InvalidNode(f"expects an (N, C, ...) input, got {x}")
    if x.shape[1] % a["k"]:
        raise InvalidNode(f"k={a['k']} does not divide the {x.shape[1]} channels")
    return x.with_shape((x.shape[0], x.shape[1] // a["k"]) + x.shape[2:])


register_op(OpSchema("maxout", {"k": lambda v: is_int(v) and v > 0}, _maxout_infer,
                     doc="out[:, c] = max(x[:, c*k : (c+1)*k]): max over k consecutive channels"))


def _softmax_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    if not 0 <= a["axis"] < ins[0].rank:
        raise InvalidNode(f"axis {a['axis']} is out of range for {ins[0]}")
    return ins[0]


register_op(OpSchema("softmax", {"axis": is_int}, _softmax_infer, doc="exp(x) / sum exp(x) along axis"))


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
                     doc="adds a learned bias of the input's per-example shape (AlphaGo's per-position)"))


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


register_op(OpSchema("concat", {"axis": is_int}, _concat_infer, num_inputs=lambda a: None,
                     doc="joins its operands along axis (channels by default)"))


# ---------------------------------------------------------------------------- dense layers
def _flatten_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    s = a["start_dim"]
    if not 0 < s < max(x.rank, 2):
        raise InvalidNode(f"start_dim {s} is out of range for {x}")
    return x.with_shape(x.shape[:s] + (math.prod(x.shape[s:]),))


register_op(OpSchema("flatten", {"start_dim": is_int}, _flatten_infer,
                     doc="merges every axis from start_dim on into one"))


def _linear_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    if x.rank != 2:
        hint = "; insert flatten() before it" if x.rank > 2 else ""
        raise InvalidNode(f"expects a 2D (N, features) input, got {x}{hint}")
    out = x.with_shape((x.shape[0], a["out_features"]))
    check_residuals(ins, out)
    return out


def _linear_params(ins: list[TensorType], a: Attrs) -> dict[str, Shape]:
    p = {"weight": (a["out_features"], ins[0].shape[1])}
    if a["bias"]:
        p["bias"] = (a["out_features"],)
    return p


register_op(OpSchema(
    "linear",
    {"out_features": lambda v: is_int(v) and v > 0, "bias": is_bool, "epilogue": valid_epilogue},
    _linear_infer, num_inputs=lambda a: 1 + epilogue_extra_inputs(a), params=_linear_params,
    macs=lambda ins, out, a: out.numel * ins[0].shape[1], tags=frozenset({"layer"}),
    doc="fully connected: x @ weight.T + bias, optionally with a fused epilogue",
))


# ---------------------------------------------------------------------------- graph boundary
def _input_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    return TensorType(a["shape"], a["dtype"])


register_op(OpSchema(
    "input", {"shape": pos_ints, "dtype": lambda v: v in DTYPES}, _input_infer,
    num_inputs=lambda a: 0, doc="a graph input; an imported model's symbolic batch axis is recorded as "
                                "dynamic_batch (its name), or fixed_batch (why it cannot change)",
    optional_attrs={"dynamic_batch": lambda v: isinstance(v, str), "fixed_batch": lambda v: isinstance(v, str)},
))
# A parameter's type comes from Graph.params; the verifier checks the two agree.
register_op(OpSchema("param", {}, lambda ins, a: TensorType((), "float32"), num_inputs=lambda a: 0,
                     doc="a named parameter tensor"))
