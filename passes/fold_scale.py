"""conv/linear -> channel_scale  ==>  conv/linear with rescaled weight and bias.

A per-channel scale y = x * s (ConvNeXt's layer scale) right after a conv or linear layer is folded into
it, as fold_bn folds a batch norm: W'[o] = W[o] * s[o] and b'[o] = b[o] * s[o], in float64, cast back to
the parameter's dtype. Same conditions as fold_bn: the layer's value is read by the scale alone, is not a
graph output, and the layer has no epilogue yet (an activation would not commute with the scale).

    %y = conv2d(%x, %w, %b)                 %y = conv2d(%x, %w', %b')
    %s = channel_scale(%y, %gamma)   ==>
"""
from __future__ import annotations

import numpy as np

from convc.ir import Graph, Node
from convc.pass_manager import PassContext, convc_pass
from convc.passes.fold_bn import foldable_layer, remove_bn, set_param


def fold_scale_into(g: Graph, scale_node: Node, layer: Node, compile_dtype: str) -> None:
    scale = np.asarray(g.param_of(scale_node, "weight"), np.float64)
    weight = np.asarray(g.param_of(layer, "weight"), np.float64)
    folded = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    weight_name = set_param(g, layer, "weight", folded, compile_dtype)
    operands = g.activation_inputs(layer) + (weight_name,)
    if layer.attrs["bias"]:
        bias = np.asarray(g.param_of(layer, "bias"), np.float64) * scale
        operands += (set_param(g, layer, "bias", bias, compile_dtype),)
    g.replace_node(layer.replace(inputs=operands))
    remove_bn(g, scale_node, layer.name)


@convc_pass("fold_channel_scale", opt_level=1, runs_after=("fold_bn",))
def fold_channel_scale(g: Graph, ctx: PassContext) -> bool:
    """conv/linear -> channel_scale ==> conv/linear with the scale in its weight and bias."""
    changed = False
    for node in g.nodes("channel_scale"):
        layer = foldable_layer(g, node)
        if layer is not None:
            fold_scale_into(g, node, layer, ctx.dtype)
            changed = True
    return changed
