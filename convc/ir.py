"""The IR: typed nodes in a graph whose edges are derived from each node's ordered inputs.

    g = Graph("tiny")
    x = g.add(Node("x", "input", (), {"shape": (1, 3, 8, 8), "dtype": "float32"}, TensorType((1, 3, 8, 8))))
    ...
    g.verify()                      # arity, attributes, shapes, dtypes, parameters, acyclicity
    for node in g.nodes("conv2d"):  # stable topological order
        ...

Ordered `inputs` are the truth: a networkx DiGraph merges parallel edges (add(x, x) has two operands
but one edge), so the DiGraph is only a derived view, rebuilt when the graph changes.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import numpy as np

from convc.errors import GraphError
from convc.ops import InvalidNode, schema_of
from convc.types import DTYPES, TensorType


@dataclass
class Node:
    """One value in the graph: `name = op(*inputs) {attrs} : type`."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    type: TensorType = TensorType(())

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)

    def replace(self, **changes: Any) -> Node:
        return replace(self, **changes)


class Graph:
    """A DAG of typed nodes plus the parameter arrays they read (keys like torchvision's state_dict)."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self._nodes: dict[str, Node] = {}
        self._order: list[str] = []  # tie-break for the topological order: insertion order
        self.params: dict[str, np.ndarray] = {}
        self.outputs: list[str] = []
        # value name -> the node that now computes that value, recorded by replace_all_uses. Passes
        # keep it so a numerics check can pair each original value with its replacement.
        self.replaced: dict[str, str] = {}
        self._topo: list[str] | None = None

    # ------------------------------------------------------------------ reading
    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def __getitem__(self, name: str) -> Node:
        return self.node(name)

    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise GraphError(f"graph '{self.name}' has no node '{name}'") from None

    def nodes(self, op: str | Iterable[str] | None = None) -> list[Node]:
        """Nodes in a stable topological order (insertion order breaks ties), optionally of given ops."""
        if self._topo is None:
            self._topo = self._toposort()
        ops = {op} if isinstance(op, str) else (set(op) if op is not None else None)
        return [self._nodes[n] for n in self._topo if ops is None or self._nodes[n].op in ops]

    @property
    def inputs(self) -> list[Node]:
        return self.nodes("input")

    def digraph(self) -> nx.DiGraph:
        """A derived networkx view: an edge u -> v for each distinct operand u of v."""
        dg = nx.DiGraph()
        for name in self._order:
            node = self._nodes[name]
            dg.add_node(name, op=node.op)
            for i, src in enumerate(node.inputs):
                if src in self._nodes:
                    if dg.has_edge(src, name):
                        dg.edges[src, name]["positions"].append(i)
                    else:
                        dg.add_edge(src, name, positions=[i])
        return dg

    def producer(self, value: str) -> Node:
        return self.node(value)

    def users(self, value: str) -> list[Node]:
        """Nodes that read `value`, in topological order (each once even if it reads it twice)."""
        readers = [n for n in self._nodes.values() if value in n.inputs]
        if len(readers) <= 1:  # no order to establish: skip the topological sort passes would redo
            return readers
        return [n for n in self.nodes() if value in n.inputs]

    def is_output(self, value: str) -> bool:
        return value in self.outputs

    def param_of(self, node: Node, slot: str) -> np.ndarray | None:
        """The array bound to a parameter slot ('weight', 'bias', ...) of a layer node, if any."""
        name = self.param_input(node, slot)
        return None if name is None else self.params[name]

    def param_input(self, node: Node, slot: str) -> str | None:
        """The name of the param node feeding `slot` of `node`, or None if the op has no such slot."""
        slots = self.param_slots(node)
        if slot not in slots:
            return None
        return node.inputs[len(node.inputs) - len(slots) + list(slots).index(slot)]

    def param_slots(self, node: Node) -> dict[str, tuple[int, ...]]:
        schema = schema_of(node.op)
        n_act = schema.num_inputs(node.attrs)
        acts = node.inputs if n_act is None else node.inputs[:n_act]
        return schema.params([self._nodes[a].type for a in acts], node.attrs)

    def activation_inputs(self, node: Node) -> tuple[str, ...]:
        return node.inputs[: len(node.inputs) - len(self.param_slots(node))]

    def fresh_name(self, base: str) -> str:
        if base not in self._nodes:
            return base
        i = 1
        while f"{base}_{i}" in self._nodes:
            i += 1
        return f"{base}_{i}"

    # ------------------------------------------------------------------ editing (for passes)
    def add(self, node: Node) -> Node:
        if node.name in self._nodes:
            raise GraphError(f"graph '{self.name}' already has a node named '{node.name}'")
        self._nodes[node.name] = node
        self._order.append(node.name)
        self._topo = None
        return node

    def add_param(self, name: str, array: np.ndarray) -> Node:
        """Adds a parameter array and the `param` node that exposes it."""
        array = np.asarray(array)
        dtype = "float64" if array.dtype == np.float64 else "float32"
        self.params[name] = array.astype(dtype, copy=False)
        return self.add(Node(name, "param", (), {}, TensorType(array.shape, dtype)))

    def insert_after(self, anchor: str, node: Node) -> Node:
        """Adds `node` placed right after `anchor` in the tie-break order."""
        self.add(node)
        self._order.remove(node.name)
        self._order.insert(self._order.index(anchor) + 1, node.name)
        return node

    def replace_node(self, node: Node) -> None:
        """Swaps in a new definition for an existing node name."""
        self.node(node.name)
        self._nodes[node.name] = node
        self._topo = None

    def replace_all_uses(self, old: str, new: str) -> int:
        """Makes every reader of `old` (and the graph outputs) read `new`; returns how many changed."""
        count = 0
        for name in self._order:
            n = self._nodes[name]
            if old in n.inputs and name != new:
                self._nodes[name] = n.replace(inputs=tuple(new if i == old else i for i in n.inputs))
                count += 1
        self.outputs = [new if o == old else o for o in self.outputs]
        self.replaced[old] = new
        self._topo = None
        return count

    def resolve(self, value: str) -> str:
        """The node that now computes the value once named `value` (follows replace_all_uses)."""
        seen = set()
        while value in self.replaced and value not in seen:
            seen.add(value)
            value = self.replaced[value]
        return value

    def erase(self, name: str) -> None:
        """Removes a node nobody reads; a param node takes its array with it."""
        readers = [n.name for n in self._nodes.values() if name in n.inputs]
        if readers or name in self.outputs:
            raise GraphError(f"cannot erase '{name}': still read by {readers or ['the graph outputs']}")
        node = self._nodes.pop(name)
        self._order.remove(name)
        if node.op == "param":
            self.params.pop(name, None)
        self._topo = None

    def copy(self) -> Graph:
        """A structural copy; parameter arrays are shared (passes replace arrays, never mutate them)."""
        g = Graph(self.name)
        g._nodes = {k: v.replace(attrs=dict(v.attrs)) for k, v in self._nodes.items()}
        g._order = list(self._order)
        g.params = dict(self.params)
        g.outputs = list(self.outputs)
        g.replaced = dict(self.replaced)
        return g

    # ------------------------------------------------------------------ checking
    def _toposort(self) -> list[str]:
        dg = self.digraph()
        pos = {n: i for i, n in enumerate(self._order)}
        try:
            return list(nx.lexicographical_topological_sort(dg, key=pos.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = " -> ".join(u for u, _ in nx.find_cycle(dg))
            raise GraphError(f"graph '{self.name}' has a cycle: {cycle}") from None

    def verify(self) -> None:
        """Checks every node against its schema; raises a GraphError naming the node and the fault."""
        for name in self._order:
            for src in self._nodes[name].inputs:
                if src not in self._nodes:
                    raise GraphError(f"node '{name}': input %{src} has no producer")
        order = self.nodes()
        for node in order:
            self._verify_node(node)
        if not self.outputs:
            raise GraphError(f"graph '{self.name}' has no outputs")
        for out in self.outputs:
            if out not in self._nodes:
                raise GraphError(f"graph output %{out} has no producer")
        stray = set(self.params) - {n.name for n in order if n.op == "param"}
        if stray:
            raise GraphError(f"parameters without a param node: {', '.join(sorted(stray))}")

    def _verify_node(self, node: Node) -> None:
        def fail(msg: str) -> GraphError:
            return GraphError(f"node '{node.name}' ({node.op}): {msg}")

        try:
            schema = schema_of(node.op)
        except InvalidNode as e:
            raise fail(str(e)) from None
        missing = set(schema.attrs) - set(node.attrs)
        extra = set(node.attrs) - set(schema.attrs) - set(schema.optional_attrs)
        if missing or extra:
            raise fail(f"attributes {sorted(node.attrs)} differ from the schema's {sorted(schema.attrs)}")
        for key, valid in {**schema.attrs, **schema.optional_attrs}.items():
            if key in node.attrs and not valid(node.attrs[key]):
                raise fail(f"attribute {key}={node.attrs[key]!r} is not valid")
        if node.type.dtype not in DTYPES:
            raise fail(f"dtype {node.type.dtype!r} is not one of {', '.join(DTYPES)}")
        if node.op == "param":
            arr = self.params.get(node.name)
            if arr is None:
                raise fail("no parameter array of that name")
            if tuple(arr.shape) != node.type.shape:
                raise fail(f"parameter has shape {tuple(arr.shape)}, node says {node.type}")
            return
        n_act = schema.num_inputs(node.attrs)
        types = [self._nodes[i].type for i in node.inputs]
        try:
            if n_act is None:
                slots = schema.params(types, node.attrs)
                n_act = len(types) - len(slots)
                if n_act < 1:
                    raise InvalidNode("needs at least one operand")
            else:
                if len(types) < n_act:
                    raise InvalidNode(f"has {len(types)} operands, expected at least {n_act}")
                slots = schema.params(types[:n_act], node.attrs)
            if len(types) != n_act + len(slots):
                raise InvalidNode(f"has {len(types)} operands, expected {n_act} inputs and "
                                  f"{len(slots)} parameters ({', '.join(slots) or 'none'})")
            for (slot, shape), t in zip(slots.items(), types[n_act:]):
                if t.shape != tuple(shape):
                    raise InvalidNode(f"{slot} has shape {t.shape}, expected {tuple(shape)}")
            inferred = schema.infer(types[:n_act], node.attrs)
        except InvalidNode as e:
            raise fail(str(e)) from None
        if inferred != node.type:
            raise fail(f"type {node.type} does not match the inferred {inferred}")

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} nodes, {len(self.params)} params)"
