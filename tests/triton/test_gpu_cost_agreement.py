"""The H100 cost model prices what the Triton kernels do: for every zoo model's sm_90 plan, each conv's
launches are the work the model counted (a unit-window im2col copies nothing and a strided one gathers
exactly its column matrix; Winograd transforms do the fp32 operations the model charges, per tile row)."""
from __future__ import annotations

import math

import pytest

import convc
import convc.models
from convc.backends.triton.winograd_transforms import TRANSFORM_OPS
from convc.passes.conv_cost import H100, WINOGRAD_TILE, ConvShape, transform_macs

NEEDS_INTERPRETER = False  # launches are only built (target="sm_90", meta device), never run
CONV_OPS = ("conv1d", "conv2d", "conv3d")


def check_agreement(model: object) -> int:
    """Asserts the launches of every conv match its modelled work; returns how many convs it checked."""
    graph = model.graph  # type: ignore[attr-defined]
    launches = model.launches  # type: ignore[attr-defined]
    checked = 0
    for node in graph.nodes(CONV_OPS):
        algo = node.attrs["algo"]
        shape = ConvShape.of(node, graph)
        names = [launch.name for launch in launches if launch.node == node.name]
        if algo in ("im2col", "implicit_gemm") and shape.unit_window:
            assert names[0] == "gemm_kernel" and "im2col_kernel" not in names, (node.name, names)
        elif algo == "im2col":
            [gather] = [launch for launch in launches if launch.node == node.name and launch.name == "im2col_kernel"]
            columns = shape.batch * shape.in_channels * math.prod(shape.kernel) * math.prod(shape.out_spatial)
            view = gather.out
            assert view is not None and view.rows * view.cols == columns
        elif algo in WINOGRAD_TILE:
            by_name = {launch.name: launch for launch in launches if launch.node == node.name}
            fwd, bwd = by_name["winograd_input_kernel"], by_name["winograd_output_kernel"]
            ops_in, ops_out = TRANSFORM_OPS[fwd.meta["TILE_OUT"]]  # per (tile, channel) row of each kernel
            kernel_in = fwd.args[2] * ops_in
            kernel_out = bwd.args[5] * ops_out
            modelled_in, modelled_out, _ = transform_macs(shape, WINOGRAD_TILE[algo], H100)
            assert (kernel_in, kernel_out) == (modelled_in, modelled_out), node.name
        checked += 1
    return checked


@pytest.mark.slow
@pytest.mark.parametrize("name", convc.models.names())
def test_every_zoo_plan_prices_its_kernels(name: str) -> None:
    net = convc.models.get(name)
    model = convc.compile(net, backend="triton", dtype="float16", target="sm_90")
    assert model.plan.device == "h100"  # type: ignore[attr-defined]
    assert check_agreement(model) == len(model.graph.nodes(CONV_OPS))  # type: ignore[attr-defined]


@pytest.mark.parametrize("algo", ["im2col", "winograd_2x2", "winograd_4x4"])
def test_pinned_algorithms_price_their_kernels(algo: str) -> None:
    net = convc.models.get("vgg11", batch=2, input_size=32) if "vgg11" in convc.models.names() else \
        convc.models.get("resnet18", batch=2, input_size=32)
    eligible = [n.name for n in net.graph.nodes("conv2d") if tuple(n.attrs["kernel"]) == (3, 3)
                and tuple(n.attrs["stride"]) == (1, 1) and n.attrs["groups"] == 1]
    model = convc.compile(net, backend="triton", dtype="float16", target="sm_90",
                          algo={layer: algo for layer in eligible})
    assert check_agreement(model) >= len(eligible) > 0


def test_the_h100_model_charges_the_transforms_adds() -> None:
    """F(4x4) on a 56x56 output: 14 x 14 tiles; per tile 12 one-dimensional input passes of 12 operations
    (Bᵀ, 6 values) per input channel and 6 + 4 output passes of 10 (Aᵀ, 6 values -> 4) per output channel;
    F(2x2): 28 x 28 tiles, 8 passes of 4 in, 4 + 2 passes of 4 out."""
    shape = ConvShape(1, 64, 32, 1, (56, 56), (56, 56), (3, 3), False)
    assert transform_macs(shape, 4, H100)[:2] == (12 * 12 * 64 * 14 * 14, 10 * 10 * 32 * 14 * 14)
    assert transform_macs(shape, 2, H100)[:2] == (8 * 4 * 64 * 28 * 28, 6 * 4 * 32 * 28 * 28)
