"""Two third-party passes, each the other's inverse, both exact:

- conv1x1_to_linear: conv2d 1x1 over a 1x1 map -> flatten  ==>  flatten -> linear. A 1x1 convolution of
  a 1x1 spatial map is a matrix product, so it can run as a linear layer.
- fc_to_conv: flatten of a CxHxW map -> linear  ==>  conv2d with an HxW kernel -> flatten (the classic
  "convolutionalization" of a classifier: the same layer then slides over larger images). It applies to
  LeNet-5, AlexNet and VGG as they are in the zoo: `convc compile lenet5 --passes +fc_to_conv --timing`.

Both keep the layer's name and reshape its weight. opt_level=99 keeps them out of the default pipelines:
they run when asked, passes=["+fc_to_conv"]. runs_before=("choose_conv_algo",) places them before the
built-in algorithm choice, so the conv that fc_to_conv makes gets an algorithm like every other conv.
"""
from __future__ import annotations

from convc.ir import Graph, Node
from convc.pass_manager import PassContext, convc_pass
from convc.types import TensorType


@convc_pass("conv1x1_to_linear", opt_level=99, runs_after=("fold_bn", "fuse_epilogue"),
            runs_before=("choose_conv_algo",))
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


@convc_pass("fc_to_conv", opt_level=99, runs_after=("fold_bn",), runs_before=("choose_conv_algo",))
def fc_to_conv(g: Graph, ctx: PassContext) -> bool:
    """flatten of a CxHxW map -> linear  ==>  conv2d with an HxW kernel -> flatten."""
    changed = False
    for fc in g.nodes("linear"):
        flat = g.node(fc.inputs[0])
        if flat.op != "flatten" or flat.attrs["start_dim"] != 1 or len(g.users(flat.name)) != 1 \
                or g.is_output(flat.name):
            continue
        x = g.node(flat.inputs[0])
        if len(x.type.shape) != 4:
            continue
        n, c, h, w = x.type.shape
        out = fc.attrs["out_features"]
        weight = g.add_param(g.fresh_name(f"{fc.name}.kernel"),
                             g.params[fc.inputs[1]].reshape(out, c, h, w))  # flatten's order is C, H, W
        attrs = {"out_channels": out, "kernel": (h, w), "stride": (1, 1), "padding": ((0, 0), (0, 0)),
                 "dilation": (1, 1), "groups": 1, "bias": fc.attrs["bias"], "algo": None,
                 "epilogue": fc.attrs["epilogue"]}
        old_weight = fc.inputs[1]
        g.replace_node(Node(fc.name, "conv2d", (x.name, weight.name) + fc.inputs[2:], attrs,
                            TensorType((n, out, 1, 1), fc.type.dtype)))
        new_flat = g.add(Node(g.fresh_name(f"{fc.name}.flatten"), "flatten", (fc.name,), {"start_dim": 1},
                              fc.type))
        g.replace_all_uses(fc.name, new_flat.name)  # readers of the layer now read the flattened map
        g.erase(flat.name)
        g.erase(old_weight)
        changed = True
    return changed
