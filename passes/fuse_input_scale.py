"""mul(x, s) -> conv1x1 {input_scale}(x, s): the squeeze-excitation multiply moves into the 1x1 conv that
reads its result, so no separate full-tensor pass writes x * s to memory (Triton and NumPy backends).

Squeeze-excitation (MobileNet v3, EfficientNet, RegNet-Y, MNASNet's relatives) ends in y = x * s, with
s of shape [N, C, 1, 1] computed from a pooled x; in those networks y feeds a 1x1 projection conv. That
conv, run as a GEMM over the [pixels, C] matrix of x, multiplies each loaded A tile by s[image of the
row, channel] before the product (backends/triton/gemm.py), which costs nothing next to the load.

Conditions: the mul's only reader is a conv taking it as its input (not as a residual) that the Triton
backend runs as a plain GEMM: a 1x1 (x1) kernel, stride 1, no padding, groups 1, algo None,
"implicit_gemm" or "im2col"; the mul is not a graph output; one operand has the conv input's shape and
the other [N, C, 1, ...]. The scale becomes the conv's last activation operand (after any residuals) and
attrs["input_scale"] = True; every backend honours it (torch multiplies first; NumPy, for one image,
scales the weight's input channels instead where the weight is the smaller: conv_operands.scaled_input),
so the numerics check and saved graphs agree.

    %y = mul(%x, %s)                         %z = conv2d {input_scale}(%x, %s, %w, %b)
    %z = conv2d(%y, %w, %b)        ==>
"""
from __future__ import annotations

from convc.ir import Graph, Node
from convc.ops import CONV_OPS
from convc.pass_manager import PassContext, convc_pass

GEMM_ALGOS = (None, "implicit_gemm", "im2col")


def runs_as_gemm(conv: Node) -> bool:
    """A conv the Triton backend lowers to its GEMM kernel reading the input in place."""
    a = conv.attrs
    return (conv.op in CONV_OPS and a["groups"] == 1 and all(k == 1 for k in a["kernel"])
            and all(s == 1 for s in a["stride"]) and all(p == 0 for pair in a["padding"] for p in pair)
            and a.get("algo") in GEMM_ALGOS and not a.get("input_scale") and not a.get("weight_transformed"))


def split_operands(g: Graph, mul: Node) -> tuple[str, str] | None:
    """(x, s) of a mul whose one operand has its output's shape and the other one factor per (image,
    channel); None for any other mul."""
    if len(mul.inputs) != 2:
        return None
    shape = mul.type.shape
    if len(shape) < 3:
        return None
    per_channel = shape[:2] + (1,) * (len(shape) - 2)
    a, b = mul.inputs
    for x, s in ((a, b), (b, a)):
        if g.node(x).type.shape == shape and g.node(s).type.shape == per_channel and x != s:
            return x, s
    return None


def fusable_reader(g: Graph, mul: Node) -> Node | None:
    """The conv that alone reads `mul`, as its input, and runs as a GEMM; None otherwise."""
    if g.is_output(mul.name):
        return None
    readers = g.users(mul.name)
    if len(readers) != 1:
        return None
    conv = readers[0]
    acts = g.activation_inputs(conv) if conv.op in CONV_OPS else ()
    if not acts or acts[0] != mul.name or mul.name in acts[1:] or not runs_as_gemm(conv):
        return None
    return conv


@convc_pass("fuse_input_scale", opt_level=2, backends=("triton", "numpy"), runs_before=("winograd_weights",),
            runs_after=("fold_bn", "fold_channel_scale", "fuse_epilogue", "choose_conv_algo"))
def fuse_input_scale(g: Graph, ctx: PassContext) -> bool:
    """mul(x, s [N, C, 1, 1]) -> 1x1 conv ==> the conv with the scale applied to its input tiles."""
    changed = False
    for mul in g.nodes("mul"):
        operands = split_operands(g, mul)
        conv = fusable_reader(g, mul) if operands is not None else None
        if operands is None or conv is None:
            continue
        x, s = operands
        acts = g.activation_inputs(conv)
        params = conv.inputs[len(acts):]
        operands = (x, *acts[1:], s, *params)
        g.replace_node(conv.replace(inputs=operands, attrs={**conv.attrs, "input_scale": True}))
        g.erase(mul.name)
        changed = True
    return changed
