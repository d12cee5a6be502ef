"""The op schema, its registry, attribute validators and the shared shape helpers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convc.errors import ConvcError
from convc.types import TensorType


class InvalidNode(ConvcError):
    """Raised by schema functions; callers re-raise with the node's op and name in front."""


Attrs = dict[str, Any]
Shape = tuple[int, ...]

# Epilogue steps a fused conv/linear applies before its store, in order. ("add",) consumes the next
# extra activation input (a residual); the others are activations with an optional parameter.
# ("clip", lo, hi) is relu6 / hardtanh; ("gelu_tanh",) is GELU with the tanh approximation.
EPILOGUE_ACTIVATIONS = {"relu": 0, "leaky_relu": 1, "sigmoid": 0, "tanh": 0, "elu": 1, "clip": 2,
                        "hardswish": 0, "hardsigmoid": 0, "silu": 0, "gelu": 0, "gelu_tanh": 0}
ACTIVATION_OPS = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "clip", "hardswish", "hardsigmoid", "silu",
                  "gelu")
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
    # Attributes a node may leave out (absent means off); each is validated when present.
    optional_attrs: dict[str, Callable[[Any], bool]] = field(default_factory=dict)


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
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def pos_ints(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) > 0 and all(is_int(i) and i > 0 for i in v)


def nonneg_ints(v: Any) -> bool:
    return isinstance(v, tuple) and all(is_int(i) and i >= 0 for i in v)


def pad_pairs(v: Any) -> bool:
    return isinstance(v, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and all(is_int(i) and i >= 0 for i in p) for p in v
    )


def valid_epilogue(v: Any) -> bool:
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
            if len(args) != EPILOGUE_ACTIVATIONS[kind] or not all(is_num(a) for a in args):
                return False
        else:
            return False
    return True


def valid_algo(v: Any) -> bool:
    return v is None or isinstance(v, str)


def is_bool(v: Any) -> bool:
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


def check_residuals(ins: list[TensorType], out: TensorType) -> None:
    for r in ins[1:]:
        if r.shape != out.shape:
            raise InvalidNode(f"residual operand {r} does not match the output {out}")


def check_rank(x: TensorType, rank: int, layout: str) -> None:
    if x.rank != rank:
        raise InvalidNode(f"expects a {rank}D ({layout}) input, got {x}")
