"""conv2d {algo=winograd_*}(x, w)  ->  conv2d {algo=winograd_*, weight_transformed=True}(x, G w Gᵀ).

Winograd F(m x m, 3x3) multiplies each input tile's transform by the filter's transform G g Gᵀ. The
filters are constants at inference, so their transform is computed here once, in float64, and becomes
the conv's weight parameter (shape ((m + 2)², K, C), named `<weight>.winograd_<m>x<m>`); the forward
never reads the untransformed weight again, and the parameter is dropped from the graph when no other
node reads it. Runs after choose_conv_algo, for the NumPy backend (the Triton backend packs its own
transformed filters at compile time, in its own layout).

    g = optimize(net, backend="numpy", opt_level=2)     # layer1.0.conv2.weight.winograd_4x4: (36, 64, 64)
"""
from __future__ import annotations

from convc.ir import Graph
from convc.numerics import add_pass_param
from convc.ops.convolution import WINOGRAD_TILES
from convc.pass_manager import PassContext, convc_pass
from convc.winograd import transform_filters


@convc_pass("winograd_weights", opt_level=2, runs_after=("choose_conv_algo",), backends=("numpy",))
def winograd_weights(g: Graph, ctx: PassContext) -> bool:
    """Transforms each Winograd conv's filters once, at compile time (G g Gᵀ as the weight)."""
    changed = False
    for node in g.nodes("conv2d"):
        algo = node.attrs["algo"]
        if algo not in WINOGRAD_TILES or node.attrs.get("weight_transformed"):
            continue
        weight_name = g.param_input(node, "weight")
        assert weight_name is not None  # every conv has a weight slot
        weight = g.params[weight_name]
        # Stored at the weight's precision, or float64 when compiling in float64 (numerics.add_pass_param).
        new_name = add_pass_param(g, g.fresh_name(f"{weight_name}.{algo}"),
                                  transform_filters(weight, WINOGRAD_TILES[algo]),
                                  g.node(weight_name).type.dtype, ctx.dtype)
        inputs = tuple(new_name if i == weight_name else i for i in node.inputs)
        g.replace_node(node.replace(inputs=inputs, attrs={**node.attrs, "weight_transformed": True}))
        if not g.users(weight_name) and not g.is_output(weight_name):
            g.erase(weight_name)
        changed = True
    if changed:
        ctx.log.append("winograd_weights: Winograd filters transformed at compile time")
    return changed
