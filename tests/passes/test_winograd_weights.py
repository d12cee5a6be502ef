"""winograd_weights: each Winograd conv's filters are transformed once at compile time; the forward
never reads the untransformed weight; numerics against torch in float64 within the Winograd budgets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convc
from convc.compiler import optimize
from convc.dsl import Network
from convc.errors import GraphError
from convc.ir import Graph
from convc.numerics import budget, rel_err
from convc.winograd import transform_filters, untransform_filters
from pass_check import seeded_inputs, with_float64_params

PINS = {"a": "winograd_2x2", "b": "winograd_4x4", "c": "im2col"}


def three_convs() -> Graph:
    """Three 3x3 convs (11x9 maps: partial tiles for both tile sizes), float64 parameters."""
    net = Network("w", seed=3)
    x = net.input((2, 5, 11, 9))
    y = net.relu(net.conv2d(x, 6, 3, padding=1, name="a"))
    y = net.conv2d(y, 7, 3, padding=1, name="b")
    net.output(net.conv2d(y, 4, 3, padding=1, name="c"))
    return with_float64_params(net.graph)


def torch_reference(g: Graph, x: np.ndarray) -> np.ndarray:
    p = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in g.params.items()}
    y = torch.from_numpy(x)
    y = F.relu(F.conv2d(y, p["a.weight"], p["a.bias"], padding=1))
    y = F.conv2d(y, p["b.weight"], p["b.bias"], padding=1)
    return F.conv2d(y, p["c.weight"], p["c.bias"], padding=1).numpy()


def test_winograd_weights_become_transformed_parameters_and_the_originals_leave_the_graph() -> None:
    net = three_convs()
    g, ctx, manager = optimize(net, algo=PINS, check_numerics=True)
    assert [r.name for r in manager.records][-1] == "winograd_weights"
    assert manager.records[-1].error is not None and manager.records[-1].error < 1e-12
    for layer, alpha in (("a", 4), ("b", 6)):
        node = g.node(layer)
        weight = g.param_input(node, "weight")
        assert node.attrs["weight_transformed"] is True
        assert weight == f"{layer}.weight.{PINS[layer]}" and f"{layer}.weight" not in g.params
        in_channels = g.node(g.activation_inputs(node)[0]).type.shape[1]
        assert g.params[weight].shape == (alpha * alpha, node.attrs["out_channels"], in_channels)
    assert "weight_transformed" not in g.node("c").attrs and "c.weight" in g.params


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_outputs_match_torch_in_float64_within_the_winograd_budget(dtype: str) -> None:
    net = three_convs()
    model = convc.compile(net, algo=PINS, dtype=dtype)
    x = seeded_inputs(net)[0]
    err = rel_err(model.run(x)[0], torch_reference(net, x))
    assert err <= budget(dtype, "winograd_4x4"), err


def test_the_forward_never_reads_the_untransformed_weights() -> None:
    """The compiled graph holds only the transformed filters of the Winograd layers; float64 parameters
    are used as they are (no cast copy), so poisoning the compiled graph's own arrays with NaN shows in
    the output wherever a kernel reads them. The caller's arrays are not the compiled model's (the pass
    manager works on copies): poisoning them changes nothing."""
    net = three_convs()
    model = convc.compile(net, algo=PINS, dtype="float64")
    x = seeded_inputs(net)[0]
    before = model.run(x)[0]
    params = model.graph.params
    assert "a.weight" not in params and "b.weight" not in params
    assert {"a.weight.winograd_2x2", "b.weight.winograd_4x4"} <= set(params)
    for layer in ("a", "b", "c"):
        net.params[f"{layer}.weight"][...] = np.nan
    np.testing.assert_array_equal(model.run(x)[0], before)
    params["c.weight"][...] = np.nan  # c runs im2col on its original weight: the check can fail
    assert np.isnan(model.run(x)[0]).all()


def test_no_transform_for_backends_that_pack_their_own_or_have_no_winograd() -> None:
    g, _, manager = optimize(three_convs(), backend="torch", check_numerics=False)
    assert "winograd_weights" not in [r.name for r in manager.records]
    assert all("weight_transformed" not in n.attrs for n in g.nodes("conv2d"))


def test_a_transformed_weight_without_a_winograd_algorithm_is_refused_by_the_verifier() -> None:
    g, _, _ = optimize(three_convs(), algo=PINS, check_numerics=False)
    node = g.node("b")
    g.replace_node(node.replace(attrs={**node.attrs, "algo": "im2col"}))
    with pytest.raises(GraphError, match="'b'.*weight_transformed needs a Winograd algo"):
        g.verify()


@pytest.mark.parametrize("tile", [2, 4])
def test_the_filter_transform_inverts_exactly_in_float64(tile: int) -> None:
    w = np.random.default_rng(tile).standard_normal((3, 2, 3, 3))
    u = transform_filters(w, tile)
    assert u.shape == ((tile + 2) ** 2, 3, 2)
    np.testing.assert_allclose(untransform_filters(u, tile), w, rtol=0, atol=1e-12)
