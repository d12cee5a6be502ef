"""conv2d 1x1 over a 1x1 map -> flatten  ==>  flatten -> linear (same name, weight reshaped).

A 1x1 convolution of a 1x1 spatial map is a matrix product, so it can run as a linear layer.
opt_level=99 keeps it out of the default pipelines: it runs when asked, passes=["+conv1x1_to_linear"].
"""
from __future__ import annotations

from convc.ir import Graph, Node
from convc.pass_manager import PassContext, convc_pass
from convc.types import TensorType


@convc_pass("conv1x1_to_linear", opt_level=99, runs_after=("fold_bn",))
def conv1x1_to_linear(g: Graph, ctx: PassContext) -> bool:
    """conv2d 1x1 over a 1x1 map -> flatten  ==>  flatten -> linear."""
    changed = False
    for conv in g.nodes("conv2d"):
        x, a, readers = g.node(conv.inputs[0]), conv.attrs, g.users(conv.name)
        flat = readers[0] if len(readers) == 1 and not g.is_output(conv.name) else None
        if (flat is None or flat.op != "flatten" or flat.attrs["start_dim"] != 1 or a["groups"] != 1
                or x.type.shape[2:] != (1, 1) or a["kernel"] != (1, 1) or a["padding"] != ((0, 0),) * 2
                or ("add",) in a["epilogue"]):
            continue
        n, c = x.type.shape[:2]
        flat_x = g.add(Node(g.fresh_name(f"{conv.name}.flatten"), "flatten", (x.name,), {"start_dim": 1},
                            TensorType((n, c), x.type.dtype)))
        weight = g.add_param(g.fresh_name(f"{conv.name}.matrix"), g.params[conv.inputs[1]].reshape(-1, c))
        attrs = {"out_features": a["out_channels"], "bias": a["bias"], "epilogue": a["epilogue"]}
        operands = (flat_x.name, weight.name) + conv.inputs[2:]  # the bias, if any, as it was
        g.replace_node(Node(conv.name, "linear", operands, attrs, flat.type))
        g.replace_all_uses(flat.name, conv.name)  # the linear now computes the flatten's value
        g.erase(flat.name)
        g.erase(conv.inputs[1])  # the old 4D weight: nothing reads it any more
        changed = True
    return changed
