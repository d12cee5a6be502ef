"""The Triton Winograd kernels (transforms written out as adds: winograd_transforms.py) against torch in
float64 on the CPU interpreter, over random small geometries, dtypes, biases and fused epilogues; and the
transform tables against the definition of a 3x3 correlation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triton_check import compile_triton, fuse, set_algo

from convc.backends.triton.winograd_transforms import A_T, B_T, G, TRANSFORM_OPS
from convc.dsl import Network
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.usefixtures("small_blocks")


@pytest.mark.parametrize("m", [2, 4])
def test_the_tables_compute_a_3x3_correlation(m: int) -> None:
    """Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A is the m x m valid correlation of a (m+2) x (m+2) tile d with g."""
    rng = np.random.default_rng(m)
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    bt, at, gm = (np.asarray(t[m], np.float64) for t in (B_T, A_T, G))
    y = at @ ((gm @ g @ gm.T) * (bt @ d @ bt.T)) @ at.T
    expected = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_the_operation_counts_are_those_of_the_line_passes() -> None:
    """2t passes in (t -> t values: 4 operations for t = 4, 12 for t = 6), t + m passes out (4 and 10)."""
    assert TRANSFORM_OPS == {2: (8 * 4, 6 * 4), 4: (12 * 12, 10 * 10)}


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(algo=st.sampled_from(["winograd_2x2", "winograd_4x4"]), dtype=st.sampled_from(["float32", "float16"]),
       batch=st.integers(1, 2), channels=st.integers(1, 6), out_channels=st.integers(1, 7),
       height=st.integers(3, 11), width=st.integers(3, 11),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
       bias=st.booleans(), residual_relu=st.booleans(), seed=st.integers(0, 1000))
def test_winograd_matches_torch_in_float64(algo: str, dtype: str, batch: int, channels: int,
                                          out_channels: int, height: int, width: int,
                                          padding: tuple[int, int, int, int], bias: bool, residual_relu: bool,
                                          seed: int) -> None:
    """Partial edge tiles, asymmetric padding, one channel, odd channel counts; with residual_relu the
    output transform also adds a residual and applies relu (fused epilogue)."""
    top, bottom, left, right = padding
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    if out_h < 1 or out_w < 1:
        return
    net = Network("winograd", seed=seed)
    x = net.input((batch, channels, height, width))
    residual = net.input((batch, out_channels, out_h, out_w), name="residual") if residual_relu else None
    y = net.conv2d(x, out_channels, 3, padding=((top, bottom), (left, right)), bias=bias, name="conv")
    set_algo(net, y, algo)
    net.output(y)
    if residual is not None:
        fuse(net, y, (("add",), ("relu",)), [residual])
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(n.type.shape).astype(np.float32) for n in net.graph.inputs]
    out = compile_triton(net, dtype).run(*inputs)[0]

    params = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
    padded = F.pad(torch.from_numpy(inputs[0].astype(np.float64)), (left, right, top, bottom))
    ref = F.conv2d(padded, params["conv.weight"], params.get("conv.bias"))
    if residual is not None:
        ref = F.relu(ref + torch.from_numpy(inputs[1].astype(np.float64)))
    assert rel_err(out, ref.numpy()) <= budget(dtype, algo), (rel_err(out, ref.numpy()), budget(dtype, algo))
