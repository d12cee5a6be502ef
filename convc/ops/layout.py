"""Schemas of the ops that move channels without arithmetic: ShuffleNet's channel shuffle and a slice
along one axis (torch's chunk / split, ONNX's Slice / Split along channels).

    channel_shuffle {groups=2}: (N, C, ...) -> channel c' = j * groups + i holds input channel
                                i * (C / groups) + j  (view as (N, groups, C/groups, ...), swap, flatten)
    slice {axis=1, start=0, stop=24}: x[:, 0:24]
"""
from __future__ import annotations

from convc.ops.schema import Attrs, InvalidNode, OpSchema, TensorType, is_int, register_op


def _channel_shuffle_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    if x.rank < 2:
        raise InvalidNode(f"expects an (N, C, ...) input, got {x}")
    if x.shape[1] % a["groups"]:
        raise InvalidNode(f"groups={a['groups']} does not divide the {x.shape[1]} channels")
    return x


register_op(OpSchema("channel_shuffle", {"groups": lambda v: is_int(v) and v > 0}, _channel_shuffle_infer,
                     doc="interleaves `groups` equal channel groups (ShuffleNet): output channel "
                         "j * groups + i is input channel i * (C / groups) + j"))


def _slice_infer(ins: list[TensorType], a: Attrs) -> TensorType:
    x = ins[0]
    axis, start, stop = a["axis"], a["start"], a["stop"]
    if not 0 < axis < x.rank:
        raise InvalidNode(f"axis {axis} is out of range for {x} (the batch axis 0 cannot be sliced)")
    if not 0 <= start < stop <= x.shape[axis]:
        raise InvalidNode(f"slice {start}:{stop} is empty or outside axis {axis} of size {x.shape[axis]}")
    return x.with_shape(x.shape[:axis] + (stop - start,) + x.shape[axis + 1:])


register_op(OpSchema("slice", {"axis": is_int, "start": is_int, "stop": is_int}, _slice_infer,
                     doc="x[..., start:stop, ...] along one non-batch axis (step 1)"))
