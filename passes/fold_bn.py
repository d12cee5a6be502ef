"""conv/linear -> batch_norm  ==>  conv/linear with rescaled weight and bias;  batch_norm -> scale_shift.

At inference a batch norm is the per-channel affine map y = x * s + t with s = gamma / sqrt(var + eps)
and t = beta - mean * s. Right after a conv or linear layer it folds into that layer:

    W'[o] = W[o] * s[o]          b'[o] = (b[o] - mean[o]) * s[o] + beta[o]     (b = 0 without a bias)

computed in float64 and stored in the parameter's dtype, or in float64 when compiling in float64
(`convc.numerics.pass_param_dtype`: float64 is float64 even for a network whose weights are float32). A layer without a bias gets one: its
`bias` attribute becomes True and a new parameter "<layer>.bias" is added. Folding needs the layer's
value to be read only by that BN (a conv feeding several consumers keeps its BN, as a scale_shift) and
an empty epilogue (an activation between them would not commute with the affine map).

Any other batch norm becomes a `scale_shift` node with s and t precomputed. It is never folded forward
into a following conv: with zero padding the conv sees padded zeros, not zeros mapped through the BN,
so the border outputs would be wrong.
"""
from __future__ import annotations

import numpy as np

from convc.ir import Graph, Node
from convc.ops import LAYER_OPS
from convc.numerics import add_pass_param, pass_param_dtype
from convc.pass_manager import PassContext, convc_pass

FOLDABLE_OPS = LAYER_OPS


def bn_affine(g: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of an inference batch norm, in float64."""
    def param(slot: str) -> np.ndarray:
        return np.asarray(g.param_of(bn, slot), np.float64)

    scale = param("weight") / np.sqrt(param("running_var") + bn.attrs["eps"])
    return scale, param("bias") - param("running_mean") * scale


def foldable_layer(g: Graph, bn: Node) -> Node | None:
    """The conv/linear layer `bn` can fold into, or None."""
    layer = g.node(g.activation_inputs(bn)[0])
    if layer.op not in FOLDABLE_OPS or layer.attrs["epilogue"] != ():
        return None
    if g.is_output(layer.name) or [u.name for u in g.users(layer.name)] != [bn.name]:
        return None
    return layer


def set_param(g: Graph, layer: Node, slot: str, value: np.ndarray, compile_dtype: str) -> str:
    """Binds `value` to `slot` of `layer`, in place unless another node shares that parameter."""
    name = g.param_input(layer, slot)
    assert name is not None
    value = value.astype(pass_param_dtype(compile_dtype, g.params[name].dtype))
    if [u.name for u in g.users(name)] == [layer.name]:
        g.params[name] = value  # a new array: the graph copy this came from keeps the old one
        return name
    # A tied parameter: give this layer its own copy rather than change the other readers.
    logical = g.node(name).type.dtype
    return add_pass_param(g, g.fresh_name(f"{layer.name}.{slot}"), value, logical, compile_dtype)


def fold_into(g: Graph, bn: Node, layer: Node, compile_dtype: str) -> None:
    scale, shift = bn_affine(g, bn)
    weight = np.asarray(g.param_of(layer, "weight"), np.float64)
    folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    old_bias = g.param_of(layer, "bias")
    bias = np.zeros_like(scale) if old_bias is None else np.asarray(old_bias, np.float64)
    folded_bias = bias * scale + shift
    acts = g.activation_inputs(layer)
    weight_name = set_param(g, layer, "weight", folded_weight, compile_dtype)
    if layer.attrs["bias"]:
        bias_name = set_param(g, layer, "bias", folded_bias, compile_dtype)
    else:
        logical = g.node(weight_name).type.dtype
        bias_name = add_pass_param(g, g.fresh_name(f"{layer.name}.bias"), folded_bias, logical, compile_dtype)
    g.replace_node(layer.replace(inputs=acts + (weight_name, bias_name),
                                 attrs={**layer.attrs, "bias": True}))
    remove_bn(g, bn, layer.name)


def remove_bn(g: Graph, bn: Node, replacement: str) -> None:
    """Makes readers of `bn` read `replacement`, then erases `bn` and the parameters only it read."""
    g.replace_all_uses(bn.name, replacement)
    g.erase(bn.name)
    erase_unread_params(g, bn.inputs)


def erase_unread_params(g: Graph, names: tuple[str, ...]) -> None:
    # Superseded parameters (the old weight of a tied layer, the BN's statistics) go with their node.
    for name in dict.fromkeys(names):
        if name in g and g.node(name).op == "param" and not g.users(name) and not g.is_output(name):
            g.erase(name)


def to_scale_shift(g: Graph, bn: Node, compile_dtype: str) -> None:
    """Rewrites `bn` in place (same name, so readers are untouched) as x * scale + shift."""
    scale, shift = bn_affine(g, bn)
    logical = g.node(g.param_input(bn, "weight") or "").type.dtype
    scale_name = add_pass_param(g, g.fresh_name(f"{bn.name}.scale"), scale, logical, compile_dtype)
    shift_name = add_pass_param(g, g.fresh_name(f"{bn.name}.shift"), shift, logical, compile_dtype)
    g.replace_node(Node(bn.name, "scale_shift", (g.activation_inputs(bn)[0], scale_name, shift_name), {},
                        bn.type))
    erase_unread_params(g, bn.inputs[1:])


@convc_pass("fold_bn", opt_level=1, runs_after=("eliminate_dropout", "eliminate_identity", "fold_constants",
                                                "dce"))
def fold_bn(g: Graph, ctx: PassContext) -> bool:
    """conv/linear -> batch_norm ==> conv/linear with rescaled weight and bias; other BNs -> scale_shift."""
    caps = ctx.capabilities
    # A target that cannot run scale_shift keeps the batch norms that have nowhere to fold.
    can_scale_shift = caps is None or "scale_shift" in caps.ops
    changed = False
    for listed in g.nodes("batch_norm"):
        # Re-read the node: folding the BN before it (conv -> bn -> bn) rewired its input.
        bn = g.node(listed.name)
        layer = foldable_layer(g, bn)
        if layer is not None:
            fold_into(g, bn, layer, ctx.dtype)
            changed = True
        elif can_scale_shift:
            to_scale_shift(g, bn, ctx.dtype)
            changed = True
    return changed
