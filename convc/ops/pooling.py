"""Pooling schemas: max/avg pooling in 1D/2D/3D and global pooling."""
from __future__ import annotations

from collections.abc import Callable

from convc.ops.convolution import SPATIAL
from convc.ops.schema import (
    Attrs,
    InvalidNode,
    OpSchema,
    TensorType,
    check_rank,
    fmt_dims,
    is_bool,
    nonneg_ints,
    pos_ints,
    register_op,
)


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
        check_rank(x, nd + 2, "N, C, " + SPATIAL[nd])
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


POOL_ATTRS = {"kernel": pos_ints, "stride": pos_ints, "padding": nonneg_ints, "ceil_mode": is_bool}
for _nd in (1, 2, 3):
    register_op(OpSchema(f"max_pool{_nd}d", POOL_ATTRS, _pool_infer(_nd), tags=frozenset({"pool"}),
                         doc=f"{_nd}D max pooling"))
    register_op(OpSchema(f"avg_pool{_nd}d", {**POOL_ATTRS, "count_include_pad": is_bool}, _pool_infer(_nd),
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


def _adaptive_pool_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    size = a["output_size"]
    if x.rank != len(size) + 2:
        raise InvalidNode(f"output size {fmt_dims(size)} needs an (N, C, "
                          f"{SPATIAL.get(len(size), 'spatial')}) input, got {x}")
    return x.with_shape(x.shape[:2] + tuple(size))


register_op(OpSchema("adaptive_avg_pool", {"output_size": pos_ints}, _adaptive_pool_infer,
                     tags=frozenset({"pool"}),
                     doc="average over windows [floor(i * In / Out), ceil((i + 1) * In / Out)) per axis, "
                         "for any output size (torch's adaptive_avg_pool)"))
