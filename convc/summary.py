"""Per-layer summary: output shape, parameters, multiply-accumulates and activation bytes."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from convc.ir import Graph
from convc.ops import BUFFER_SLOTS, schema_of


@dataclass(frozen=True)
class LayerRow:
    name: str
    op: str
    shape: tuple[int, ...]
    params: int  # learned parameters (what torch's model.parameters() counts)
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class Summary:
    graph: str
    layers: list[LayerRow]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def total_activation_bytes(self) -> int:
        return sum(r.activation_bytes for r in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.graph,
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "total_activation_bytes": self.total_activation_bytes,
            "layers": [{**asdict(r), "shape": list(r.shape)} for r in self.layers],
        }

    def layer(self, name: str) -> LayerRow:
        for r in self.layers:
            if r.name == name:
                return r
        raise KeyError(name)


def summarize(graph: Graph) -> Summary:
    """One row per computing node (inputs and parameters are folded into the layers that read them)."""
    rows = []
    for node in graph.nodes():
        if node.op == "param":
            continue
        schema = schema_of(node.op)
        acts = [graph.node(i).type for i in graph.activation_inputs(node)]
        slots = graph.param_slots(node) if node.op != "input" else {}
        learned = [graph.param_input(node, s) for s in slots if s not in BUFFER_SLOTS]
        n_params = sum(graph.params[p].size for p in learned if p is not None and graph.node(p).op == "param")
        rows.append(LayerRow(node.name, node.op, node.type.shape, int(n_params),
                             int(schema.macs(acts, node.type, node.attrs)) if node.op != "input" else 0,
                             node.type.nbytes))
    return Summary(graph.name, rows)
