"""Convolution schemas: conv1d, conv2d, conv3d (with a fused epilogue)."""
from __future__ import annotations

import math
from collections.abc import Callable

from convc.ops.schema import (
    Attrs,
    InvalidNode,
    OpSchema,
    Shape,
    TensorType,
    check_rank,
    check_residuals,
    epilogue_extra_inputs,
    fmt_dims,
    fmt_padding,
    is_bool,
    is_int,
    pad_pairs,
    pos_ints,
    register_op,
    valid_algo,
    valid_epilogue,
)

# ---------------------------------------------------------------------------- convolution
SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def conv_output_size(size: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def input_scale_inputs(attrs: Attrs) -> int:
    """1 when the conv multiplies its input by a per-(image, channel) scale first (attrs["input_scale"],
    passes/fuse_channel_scale.py), else 0. The scale is the last activation operand, after the residuals:
    (x, residuals..., scale, weight, bias)."""
    return 1 if attrs.get("input_scale") else 0


def _check_input_scale(x: TensorType, scale: TensorType) -> None:
    expected = x.shape[:2] + (1,) * (x.rank - 2)
    if scale.shape != expected:
        raise InvalidNode(f"input_scale operand {scale} must have shape {fmt_dims(expected)} (one factor per "
                          f"image and input channel of {x})")


def _conv_infer(nd: int) -> Callable[[list[TensorType], Attrs], TensorType]:
    def infer(ins: list[TensorType], a: Attrs) -> TensorType:
        x = ins[0]
        check_rank(x, nd + 2, "N, C, " + SPATIAL[nd])
        if input_scale_inputs(a):
            _check_input_scale(x, ins[-1])
            ins = ins[:-1]
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
            for s, k, st, d, (lo, hi)
            in zip(x.shape[2:], a["kernel"], a["stride"], a["dilation"], a["padding"])
        )
        out = TensorType((n, o) + sp, x.dtype)
        check_residuals(ins, out)
        return out

    return infer


# Output tile edge m of each Winograd F(m x m, 3x3) algorithm; its input tiles are (m + 2) x (m + 2).
WINOGRAD_TILES = {"winograd_2x2": 2, "winograd_4x4": 4}


def _conv_params(ins: list[TensorType], a: Attrs) -> dict[str, Shape]:
    c = ins[0].shape[1]
    if a.get("weight_transformed"):
        # The weight holds the Winograd filter transform G g Gᵀ, one [K, C] matrix per tile element.
        if a["algo"] not in WINOGRAD_TILES:
            raise InvalidNode(f"weight_transformed needs a Winograd algo ({', '.join(WINOGRAD_TILES)}); "
                              f"got algo={a['algo']!r}")
        alpha = WINOGRAD_TILES[a["algo"]] + 2
        p = {"weight": (alpha * alpha, a["out_channels"], c)}
    else:
        p = {"weight": (a["out_channels"], c // a["groups"]) + tuple(a["kernel"])}
    if a["bias"]:
        p["bias"] = (a["out_channels"],)
    return p


def _conv_macs(ins: list[TensorType], out: TensorType, a: Attrs) -> int:
    c = ins[0].shape[1]
    return out.numel * (c // a["groups"]) * math.prod(a["kernel"])


CONV_OPS = ("conv1d", "conv2d", "conv3d")  # one per spatial rank, 1 to 3
# Every convolution algorithm convc has kernels for. A backend's Capabilities.conv_algos names the subset
# it implements, in its order of preference. A backend whose library picks the algorithm itself declares
# one name outside this tuple instead (torch: "cudnn"); plans record it, graphs never carry it.
# "depthwise" applies only where groups == in_channels and out_channels is a multiple of them.
CONV_ALGOS = ("direct", "im2col", "implicit_gemm", "winograd_2x2", "winograd_4x4", "depthwise")

CONV_ATTRS = {
    "out_channels": lambda v: is_int(v) and v > 0,
    "kernel": pos_ints,
    "stride": pos_ints,
    "padding": pad_pairs,
    "dilation": pos_ints,
    "groups": lambda v: is_int(v) and v > 0,
    "bias": is_bool,
    "algo": valid_algo,
    "epilogue": valid_epilogue,
}

for _nd, _op in enumerate(CONV_OPS, 1):
    register_op(OpSchema(
        _op, CONV_ATTRS, _conv_infer(_nd),
        num_inputs=lambda a: 1 + epilogue_extra_inputs(a) + input_scale_inputs(a),
        params=_conv_params, macs=_conv_macs, tags=frozenset({"conv", "layer"}),
        doc=f"{_nd}D convolution, optionally with a fused epilogue",
        # True: the weight is already Winograd-transformed for the node's algo (passes/winograd_weights.py).
        # True: x is multiplied by the [N, C, 1, ...] scale operand before the conv (squeeze-excitation).
        optional_attrs={"weight_transformed": is_bool, "input_scale": is_bool},
    ))
