"""ONNX pooling, Pad and spatial reductions -> convc pools.

convc pools pad symmetrically and never past half the kernel; ONNX allows (lo, hi) padding. Where padding
never counts (max pooling, or an average over real values only), ONNX's layout equals symmetric padding
`lo` plus the ceil_mode that gives the same number of windows: the windows start at the same places and
see the same real values.
"""
from __future__ import annotations

from typing import Any

from convc.frontends.building import FrontendError, reshape_as_flatten
from convc.frontends.onnx_context import Handler, OnnxCtx, Padded, int_attr, spatial_pads
from convc.ops import pool_output_size


def pool(kind: str) -> Handler:
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        source = ins[0]
        x = source.value if isinstance(source, Padded) and kind == "avg" else ctx.value(source, "X")
        nd = len(x.shape) - 2
        if nd not in (1, 2, 3):
            raise FrontendError(f"expects an (N, C, 1 to 3 spatial) input, got shape {x.shape}")
        if kind == "max" and ctx.output_used(1):
            raise FrontendError("the Indices output is not supported: convc does not compute indices")
        kernel = int_attr(attrs, "kernel_shape", nd, 0)
        strides = int_attr(attrs, "strides", nd, 1)
        if any(d != 1 for d in int_attr(attrs, "dilations", nd, 1)):
            raise FrontendError(f"dilations {attrs['dilations']} are not supported: convc pools are not "
                                "dilated")
        spatial = x.shape[2:] if not isinstance(source, Padded) else tuple(
            s + lo + hi for s, (lo, hi) in zip(x.shape[2:], source.pads))
        pads = spatial_pads(ctx, attrs, spatial, kernel, strides, (1,) * nd)
        ceil = bool(attrs.get("ceil_mode", 0))
        include_pad = bool(attrs.get("count_include_pad", 0))
        if isinstance(source, Padded):  # the Pad's zeros are values the average counts
            if any(p for pair in pads for p in pair) and not include_pad:
                raise FrontendError("an AveragePool with its own pads (not counted) after a Pad is not "
                                    "supported")
            pads = tuple((a + c, b + d) for (a, b), (c, d) in zip(source.pads, pads))
            include_pad = True
        if _single_window_over_all(x.shape[2:], kernel, strides, pads, ceil) and not (
                kind == "avg" and include_pad and any(p for pair in pads for p in pair)):
            # One window covering every value (as GoogLeNet's 7x7 head pool on a 6x6 map): a global pool.
            return [getattr(ctx.net, f"global_{kind}_pool")(x, name=ctx.name)]
        padding, ceil_mode = _pool_layout(x.shape[2:], kernel, strides, pads, ceil,
                                          exact=kind == "avg" and include_pad)
        return [ctx.net.pool(kind, x, kernel, stride=strides, padding=padding, ceil_mode=ceil_mode,
                             count_include_pad=include_pad, name=ctx.name, ndim=nd)]
    return handler


def _pool_layout(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                 pads: tuple[tuple[int, int], ...], ceil: bool, exact: bool) -> tuple[tuple[int, ...], bool]:
    """(symmetric padding, ceil_mode) that reproduce ONNX's windows; `exact` when padding counts."""
    onnx_out = tuple(_onnx_pool_size(s, k, st, lo, hi, ceil) for s, k, st, (lo, hi) in
                     zip(spatial, kernel, strides, pads))
    lo = tuple(p[0] for p in pads)
    if exact and any(a != b for a, b in pads):
        raise FrontendError(f"asymmetric pads {pads} with count_include_pad=1 are not supported: convc pools "
                            f"pad symmetrically")
    if any(2 * p > k for p, k in zip(lo, kernel)):
        raise FrontendError(f"pads {pads} larger than half the kernel {kernel} are not supported")
    for mode in (ceil,) if exact else (ceil, not ceil):
        ours = tuple(pool_output_size(s, k, st, p, mode) for s, k, st, p in zip(spatial, kernel, strides, lo))
        if ours == onnx_out:
            return lo, mode
    raise FrontendError(f"pads {pads} (ceil_mode={int(ceil)}) give {onnx_out} windows, which symmetric "
                        f"padding cannot reproduce")


def _single_window_over_all(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
                            pads: tuple[tuple[int, int], ...], ceil: bool) -> bool:
    return all(_onnx_pool_size(s, k, st, lo, hi, ceil) == 1 and lo + s <= k
               for s, k, st, (lo, hi) in zip(spatial, kernel, strides, pads))


def _onnx_pool_size(size: int, k: int, s: int, lo: int, hi: int, ceil: bool) -> int:
    span = size + lo + hi - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + lo:  # as ONNX (and torch): no window may start in the end padding
        out -= 1
    return out


def global_pool(kind: str) -> Handler:
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = ctx.value(ins[0], "X")
        return [getattr(ctx.net, f"global_{kind}_pool")(x, name=ctx.name)]
    return handler


def reduce(kind: str) -> Handler:
    """ReduceMean / ReduceMax over every spatial axis is a global pool (torch's x.mean((2, 3)) exports so)."""
    def handler(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
        x = ctx.value(ins[0], "data")
        rank = len(x.shape)
        axes = attrs.get("axes")
        if len(ins) > 1 and ins[1] is not None:
            axes = ctx.const(ins[1], "axes").tolist()
        spatial = list(range(2, rank))
        if axes is None or sorted(int(a) % rank for a in axes) != spatial or not spatial:
            raise FrontendError(f"a reduction over axes {axes} of {x.shape} is not supported; convc reduces "
                                f"over all spatial axes {spatial} (a global pool)")
        y = getattr(ctx.net, f"global_{kind}_pool")(x, name=ctx.name)
        if attrs.get("keepdims", 1):
            return [y]
        return [reshape_as_flatten(ctx.net, y, x.shape[:2], f"{ctx.name}.flatten", "keepdims=0")]
    return handler


def pad(ctx: OnnxCtx, ins: list[Any], attrs: dict[str, Any]) -> list[Any]:
    """A zero Pad of spatial axes, kept aside to fold into the Conv or AveragePool reading it."""
    x = ctx.value(ins[0], "data")
    rank = len(x.shape)
    if attrs.get("mode", "constant") != "constant":
        raise FrontendError(f"mode={attrs['mode']!r} is not supported; convc pads with zeros")
    pads = attrs.get("pads")
    value = float(attrs.get("value", 0.0))
    if len(ins) > 1 and ins[1] is not None:
        pads = ctx.const(ins[1], "pads").tolist()
    if len(ins) > 2 and ins[2] is not None and ctx.const(ins[2], "constant_value").size:
        value = float(ctx.const(ins[2], "constant_value").reshape(-1)[0])
    axes = list(range(rank))
    if len(ins) > 3 and ins[3] is not None:
        axes = [int(a) % rank for a in ctx.const(ins[3], "axes").tolist()]
    if pads is None or len(pads) != 2 * len(axes):
        raise FrontendError(f"pads {pads} must hold a begin and an end for each of the axes {axes}")
    per_axis = {a: (int(pads[i]), int(pads[i + len(axes)])) for i, a in enumerate(axes)}
    if value != 0 or any(per_axis.get(a, (0, 0)) != (0, 0) for a in (0, 1)) or min(pads) < 0:
        raise FrontendError(f"a Pad by {pads} with value {value} is not supported; convc folds zero padding "
                            f"of the spatial axes into the layer that reads it")
    return [Padded(x, tuple(per_axis.get(a, (0, 0)) for a in range(2, rank)))]
