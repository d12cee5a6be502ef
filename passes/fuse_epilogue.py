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

from convc.ir import Graph, Node
from convc.ops import LAYER_OPS
from convc.pass_manager import PassContext, convc_pass



def activation_step(node: Node) -> tuple[Any, ...] | None:
    """The epilogue step an activation node becomes, or None for any other node."""
    if node.op in ("relu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "silu"):
        return (node.op,)
    if node.op == "gelu":
        return ("gelu_tanh",) if node.attrs["approximate"] == "tanh" else ("gelu",)
    if node.op == "clip":
        return ("clip", node.attrs["min"], node.attrs["max"])
    if node.op == "leaky_relu":
        return ("leaky_relu", node.attrs["negative_slope"])
    if node.op == "elu":
        return ("elu", node.attrs["alpha"])
    return None


class Readers:
    """Which nodes read each value, kept up to date as nodes are absorbed (asking the graph after
    every edit would re-sort it each time: quadratic on a ResNet-152)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.of: dict[str, set[str]] = {n.name: set() for n in g.nodes()}
        for n in g.nodes():
            for i in n.inputs:
                self.of[i].add(n.name)

    def sole(self, value: str) -> Node | None:
        """The only node reading `value`, if exactly one does and `value` is not a graph output."""
        names = self.of[value]
        if len(names) != 1 or self.g.is_output(value):
            return None
        return self.g.node(next(iter(names)))

    def absorbed(self, layer: str, node: str, residual: str | None) -> None:
        """`layer` took over `node`'s value (and reads `residual`)."""
        self.of[layer] = self.of.pop(node)
        if residual is not None:
            self.of[residual].discard(node)
            self.of[residual].add(layer)


def depends_on(g: Graph, value: str, layer: str) -> bool:
    """Whether `value` is computed from `layer` (walking operands back from `value`)."""
    seen, stack = set(), [value]
    while stack:
        name = stack.pop()
        if name == layer:
            return True
        if name not in seen:
            seen.add(name)
            stack.extend(g.node(name).inputs)
    return False


def other_operand(add: Node, value: str) -> str | None:
    """The add's operand that is not `value`; None for add(v, v), which has no residual to take."""
    a, b = add.inputs
    if a == b:
        return None
    return b if a == value else a


def prefers_other_layer(g: Graph, readers: Readers, add: Node, residual: str) -> bool:
    """True when the add's first operand is another fusable layer: that one takes the add, so ResNet's
    main-path conv (written first, `out + identity`) gets it rather than the projection shortcut."""
    if add.inputs[0] != residual:
        return False
    return g.node(residual).op in LAYER_OPS and readers.sole(residual) is add


def absorb(g: Graph, readers: Readers, layer: Node, node: Node, step: tuple[Any, ...],
           residual: str | None = None) -> Node:
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
    readers.absorbed(layer.name, node.name, residual)
    return fused


def extend(g: Graph, readers: Readers, layer: Node) -> bool:
    """Absorbs as many following activations and residual adds into `layer` as may be; any absorbed?"""
    changed = False
    while True:
        reader = readers.sole(layer.name)
        if reader is None:
            return changed
        step = activation_step(reader)
        if step is not None:
            layer = absorb(g, readers, layer, reader, step)
        elif reader.op == "add":
            residual = other_operand(reader, layer.name)
            if residual is None or prefers_other_layer(g, readers, reader, residual):
                return changed
            if depends_on(g, residual, layer.name):  # it would have to run before the layer needing it
                return changed
            layer = absorb(g, readers, layer, reader, ("add",), residual)
        else:
            return changed
        changed = True


@convc_pass("fuse_epilogue", opt_level=2, runs_after=("eliminate_dropout", "eliminate_identity",
                                                      "fold_constants", "dce", "fold_bn",
                                                      "fold_channel_scale"))
def fuse_epilogue(g: Graph, ctx: PassContext) -> bool:
    """conv/linear + activation + residual add + activation ==> one node with an ordered epilogue."""
    caps = ctx.capabilities
    if caps is not None and not caps.fused_epilogue:
        ctx.log.append(f"fuse_epilogue: backend '{ctx.backend_name}' has no fused epilogues; nothing fused")
        return False
    readers = Readers(g)
    changed = False
    for layer in g.nodes(LAYER_OPS):
        changed |= extend(g, readers, g.node(layer.name))
    return changed
