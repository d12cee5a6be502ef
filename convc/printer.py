"""Text and DOT views of a graph.

    %conv1 = conv2d(%x, %conv1.weight) {stride=(2,2), padding=((3,3),(3,3))} : f32[1,64,112,112]
"""
from __future__ import annotations

from typing import Any

from convc.ir import Graph, Node


def _fmt(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ",".join(_fmt(i) for i in v) + ")"
    if isinstance(v, str):
        return repr(v)
    return str(v)


# Attributes equal to these defaults are left out of the printed line, to keep it readable.
_QUIET = {"stride": lambda v: all(i == 1 for i in v), "dilation": lambda v: all(i == 1 for i in v),
          "groups": lambda v: v == 1, "algo": lambda v: v is None, "epilogue": lambda v: v == (),
          "bias": lambda v: True, "out_channels": lambda v: True, "out_features": lambda v: True,
          "padding": lambda v: all(p == 0 for pair in v for p in (pair if isinstance(pair, tuple) else (pair,)))}


def format_node(node: Node) -> str:
    attrs = {k: v for k, v in node.attrs.items() if not (k in _QUIET and _QUIET[k](v))}
    if node.op == "input":
        attrs = {}
    operands = ", ".join(f"%{i}" for i in node.inputs)
    text = f"%{node.name} = {node.op}({operands})"
    if attrs:
        text += " {" + ", ".join(f"{k}={_fmt(v)}" for k, v in attrs.items()) + "}"
    return f"{text} : {node.type}"


def to_text(graph: Graph, params: bool = False) -> str:
    """One line per node; parameters are listed only with `params=True`."""
    lines = [f"graph {graph.name} {{"]
    for node in graph.nodes():
        if node.op == "param" and not params:
            continue
        lines.append("  " + format_node(node))
    lines.append("  return " + ", ".join(f"%{o}" for o in graph.outputs))
    lines.append("}")
    return "\n".join(lines)


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: one box per node (parameters hidden), edges for activation operands."""
    def q(s: str) -> str:
        return '"' + s.replace('"', '\\"') + '"'

    out = [f"digraph {q(graph.name)} {{", "  rankdir=TB;", "  node [shape=box, fontname=monospace];"]
    for node in graph.nodes():
        if node.op == "param":
            continue
        label = f"{node.name}\\n{node.op} {node.type}"
        shape = "ellipse" if node.op == "input" else "box"
        out.append(f"  {q(node.name)} [label={q(label)}, shape={shape}];")
        for src in node.inputs:
            if graph.node(src).op != "param":
                out.append(f"  {q(src)} -> {q(node.name)};")
    for o in graph.outputs:
        out.append(f"  {q('output:' + o)} [shape=plaintext, label={q('output')}];")
        out.append(f"  {q(o)} -> {q('output:' + o)};")
    out.append("}")
    return "\n".join(out)
