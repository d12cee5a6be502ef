"""dropout(x) -> x;  identity(x) -> x;  op(params...) -> param;  unreachable nodes -> (removed).

Inference-time cleanup that the later passes rely on: a dropout between a conv and its ReLU would
otherwise block epilogue fusion, and a BN fed through an identity would not be folded.

- eliminate_dropout / eliminate_identity: every reader of the node reads its input instead.
- fold_constants: a subgraph whose only inputs are parameters is evaluated once (float64, on the NumPy
  reference backend) and replaced by a new parameter holding its value.
- dce: nodes (and their parameters) from which no graph output can be reached are removed. Graph
  inputs are kept even when unused: they are the compiled model's calling convention.
"""
from __future__ import annotations

import numpy as np

from convc.ir import Graph, Node
from convc.numerics import add_pass_param
from convc.pass_manager import PassContext, convc_pass
from convc.registry import get_backend


def bypass(g: Graph, op: str) -> bool:
    """Replaces every `op` node by its (single) input; returns whether any was removed."""
    names = [n.name for n in g.nodes(op)]
    for name in names:
        # Read the node afresh: bypassing a chain's first link rewires the next one's input.
        g.replace_all_uses(name, g.node(name).inputs[0])
        g.erase(name)
    return bool(names)


@convc_pass("eliminate_dropout", opt_level=1)
def eliminate_dropout(g: Graph, ctx: PassContext) -> bool:
    """dropout(x) -> x: dropout is the identity at inference."""
    return bypass(g, "dropout")


@convc_pass("eliminate_identity", opt_level=1, runs_after=("eliminate_dropout",))
def eliminate_identity(g: Graph, ctx: PassContext) -> bool:
    """identity(x) -> x."""
    return bypass(g, "identity")


def constant_nodes(g: Graph) -> set[str]:
    """Names of the nodes whose value depends on parameters only (params included)."""
    constant: set[str] = set()
    for node in g.nodes():
        if node.op == "param" or (node.op != "input" and node.inputs
                                  and all(i in constant for i in node.inputs)):
            constant.add(node.name)
    return constant


def evaluate(g: Graph, wanted: list[Node], constant: set[str]) -> dict[str, np.ndarray]:
    """The float64 values of `wanted` (computed from parameters only) on the NumPy reference backend."""
    sub = Graph(f"{g.name}.constants")
    computed = [n for n in g.nodes() if n.name in constant and n.op != "param"]
    # Only the parameters these nodes read: the backend converts every param of the graph it compiles.
    read = {i for n in computed for i in n.inputs}
    for node in g.nodes():
        if node.name in read and node.op == "param":
            sub.add(node)
            sub.params[node.name] = g.params[node.name]
        elif node.name in constant and node.op != "param":
            sub.add(node.replace(attrs=dict(node.attrs)))
    sub.outputs = [n.name for n in wanted]
    values = get_backend("numpy").compile(sub, dtype="float64").run()
    return dict(zip(sub.outputs, values))


@convc_pass("fold_constants", opt_level=1, runs_after=("eliminate_dropout", "eliminate_identity"))
def fold_constants(g: Graph, ctx: PassContext) -> bool:
    """op(params only) -> param: evaluates parameter-only subgraphs once, at compile time."""
    constant = constant_nodes(g)
    # Fold only the frontier: constant values read by something that is not constant, or returned.
    frontier = [n for n in g.nodes() if n.name in constant and n.op != "param"
                and (g.is_output(n.name) or any(u.name not in constant for u in g.users(n.name)))]
    if not frontier:
        return False
    values = evaluate(g, frontier, constant)
    for node in frontier:
        logical = np.float64 if node.type.dtype == "float64" else np.float32
        folded = add_pass_param(g, g.fresh_name(f"{node.name}.folded"), values[node.name], logical, ctx.dtype)
        g.replace_all_uses(node.name, folded)
    remove_dead(g)
    return True


def remove_dead(g: Graph) -> bool:
    """Erases every node no output depends on (graph inputs stay); returns whether any went."""
    live = set(g.outputs)
    for node in reversed(g.nodes()):
        if node.name in live:
            live.update(node.inputs)
    dead = [n for n in g.nodes() if n.name not in live and n.op != "input"]
    for node in reversed(dead):  # readers before what they read, so each is unread when erased
        g.erase(node.name)
    return bool(dead)


@convc_pass("dce", opt_level=1, runs_after=("eliminate_dropout", "eliminate_identity", "fold_constants"))
def dce(g: Graph, ctx: PassContext) -> bool:
    """Dead-code elimination: removes nodes and parameters that no graph output depends on."""
    return remove_dead(g)
