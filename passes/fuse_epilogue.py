"""conv/linear -> activation -> add(residual) -> activation  ==>  one conv/linear with an epilogue.

    %y = conv2d(%x, %w, %b)                    %r2 = conv2d(%x, %r, %w, %b)
    %a = relu(%y)                  ==>              {epilogue=(("relu",), ("add",), ("relu",))}
    %s = add(%a, %r)
    %r2 = relu(%s)

The fused node keeps the conv's name (users pin algorithms by layer name) and takes over the value of
the last node it absorbed. Each ("add",) step consumes the next extra activation input, placed after x
and any earlier residuals. A node is absorbed only when the value before it has exactly one reader and
is not a graph output (otherwise that intermediate value would no longer exist), and a residual must
not depend on the layer itself (it would have to be computed before the layer that needs it: a cycle).
A backend whose capabilities say fused_epilogue=False gets no fusion.
"""
from __future__ import annotations

from typing import Any

import networkx as nx

from convc.ir import Graph, Node
from convc.pass_manager import PassContext, convc_pass

LAYER_OPS = ("conv1d", "conv2d", "conv3d", "linear")


def activation_step(node: Node) -> tuple[Any, ...] | None:
    """The epilogue step an activation node becomes, or None for any other node."""
    if node.op in ("relu", "sigmoid", "tanh"):
        return (node.op,)
    if node.op == "leaky_relu":
        return ("leaky_relu", node.attrs["negative_slope"])
    if node.op == "elu":
        return ("elu", node.attrs["alpha"])
    return None


def sole_reader(g: Graph, value: str) -> Node | None:
    if g.is_output(value):
        return None
    readers = g.users(value)
    return readers[0] if len(readers) == 1 else None


def other_operand(add: Node, value: str) -> str | None:
    """The add's operand that is not `value`; None for add(v, v), which has no residual to take."""
    a, b = add.inputs
    if a == b:
        return None
    return b if a == value else a


def prefers_other_layer(g: Graph, add: Node, value: str, residual: str) -> bool:
    """True when the add's first operand is another fusable layer: that one takes the add, so ResNet's
    main-path conv (written first, `out + identity`) gets it rather than the projection shortcut."""
    if add.inputs[0] != residual:
        return False
    other = g.node(residual)
    return other.op in LAYER_OPS and sole_reader(g, residual) is add


def absorb(g: Graph, layer: Node, node: Node, step: tuple[Any, ...], residual: str | None = None) -> Node:
    """Moves `node` into `layer`'s epilogue; `layer` (same name) now computes `node`'s value."""
    acts = g.activation_inputs(layer)
    params = layer.inputs[len(acts):]
    extra = (residual,) if residual is not None else ()
    fused = layer.replace(inputs=acts + extra + params,
                          attrs={**layer.attrs, "epilogue": layer.attrs["epilogue"] + (step,)},
                          type=node.type)
    g.replace_node(fused)
    g.replace_all_uses(node.name, layer.name)
    g.erase(node.name)
    return fused


def extend(g: Graph, layer: Node) -> bool:
    """Absorbs as many following activations and residual adds into `layer` as may be; any absorbed?"""
    changed = False
    while True:
        reader = sole_reader(g, layer.name)
        if reader is None:
            return changed
        step = activation_step(reader)
        if step is not None:
            layer = absorb(g, layer, reader, step)
        elif reader.op == "add":
            residual = other_operand(reader, layer.name)
            if residual is None or prefers_other_layer(g, reader, layer.name, residual):
                return changed
            if nx.has_path(g.digraph(), layer.name, residual):
                return changed
            layer = absorb(g, layer, reader, ("add",), residual)
        else:
            return changed
        changed = True


@convc_pass("fuse_epilogue", opt_level=2, runs_after=("eliminate_dropout", "eliminate_identity",
                                                      "fold_constants", "dce", "fold_bn"))
def fuse_epilogue(g: Graph, ctx: PassContext) -> bool:
    """conv/linear + activation + residual add + activation ==> one node with an ordered epilogue."""
    caps = ctx.capabilities
    if caps is not None and not caps.fused_epilogue:
        ctx.log.append(f"fuse_epilogue: backend '{ctx.backend_name}' has no fused epilogues; nothing fused")
        return False
    changed = False
    for layer in g.nodes(LAYER_OPS):
        changed |= extend(g, g.node(layer.name))
    return changed
