"""mul(x, sigmoid(x)) -> silu(x): SiLU as exported to ONNX (Sigmoid + Mul), or written out by hand.

torch.onnx.export writes nn.SiLU as Sigmoid followed by Mul(x, Sigmoid(x)), so an imported EfficientNet or
RegNet-Y holds two nodes where torch had one module, and neither fuses into the conv before it (a mul of
two activations is no epilogue step). This pass puts the single silu back, so fuse_epilogue can fold it
into the conv's epilogue. The sigmoid stays when something else reads it (dce removes it otherwise).

    %s = sigmoid(%x)
    %y = mul(%x, %s)      ==>   %y = silu(%x)
"""
from __future__ import annotations

from convc.ir import Graph, Node
from convc.pass_manager import PassContext, convc_pass


def silu_input(g: Graph, mul: Node) -> str | None:
    """x when `mul` computes x * sigmoid(x) (either operand order), else None."""
    if len(mul.inputs) != 2:
        return None
    a, b = mul.inputs
    for x, gate in ((a, b), (b, a)):
        producer = g.node(gate)
        if producer.op == "sigmoid" and producer.inputs == (x,) and g.node(x).type.shape == mul.type.shape:
            return x
    return None


@convc_pass("fuse_silu", opt_level=1, runs_before=("dce", "fuse_epilogue"),
            runs_after=("eliminate_dropout", "eliminate_identity", "fold_constants"))
def fuse_silu(g: Graph, ctx: PassContext) -> bool:
    """mul(x, sigmoid(x)) ==> silu(x)."""
    changed = False
    for mul in g.nodes("mul"):
        x = silu_input(g, mul)
        if x is None:
            continue
        gate = next(i for i in mul.inputs if i != x)
        g.replace_node(Node(mul.name, "silu", (x,), {}, mul.type))
        if not g.users(gate) and not g.is_output(gate):
            g.erase(gate)
        changed = True
    return changed
