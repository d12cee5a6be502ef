"""The compiled GEMMs with packed weights (backends/numpy_ref/gemm_jit.py "wide", gemm_narrow_jit.py
"narrow", chosen by packed_gemm.py) against float64 references: any M, N, K (edges of the 8 x 32 and
32 x 7 tiles, several depth blocks), both dtypes, bias and epilogues (ReLU and residual adds in the
tiles, other steps after each row panel), NaN and inf as torch spreads them; the convolutions routed
to them (1x1, gathered 3x3 stride 2) against torch float64 and the CONVC_NUMBA=0 path; each weight
packed once per model, not per forward."""
from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from convc.backends.numpy_ref import backend, gemm_jit, gemm_narrow_jit, jit, packed_cache, packed_gemm
from hypothesis import given, settings
from hypothesis import strategies as st
from test_numpy_conv import conv_graph, torch_conv

from convc.numerics import budget, rel_err

pytestmark = pytest.mark.skipif(not jit.installed(), reason="numba is not installed")

EPILOGUES = {
    "none": (),
    "relu": (("relu",),),
    "add then relu": (("add",), ("relu",)),
    "relu then two adds": (("relu",), ("add",), ("add",)),
    "sigmoid (after the tiles)": (("sigmoid",),),
    "add then leaky_relu (after the tiles)": (("add",), ("leaky_relu", 0.25)),
}
KERNELS = {"wide": gemm_jit, "narrow": gemm_narrow_jit}


def reference(w: np.ndarray, x: np.ndarray, bias: np.ndarray | None, steps: tuple,
              residuals: tuple[np.ndarray, ...]) -> np.ndarray:
    """torch in float64: w @ x + bias, then the steps, each ("add",) adding the next residual."""
    y = torch.from_numpy(w.astype(np.float64)) @ torch.from_numpy(x.astype(np.float64))
    if bias is not None:
        y = y + torch.from_numpy(bias.astype(np.float64))[:, None]
    pending = [torch.from_numpy(r.astype(np.float64)) for r in residuals]
    for step in steps:
        if step[0] == "add":
            y = y + pending.pop(0)
        elif step[0] == "relu":
            y = F.relu(y)
        elif step[0] == "sigmoid":
            y = torch.sigmoid(y)
        else:
            y = F.leaky_relu(y, step[1])
    return y.numpy()


def run_kernel(kernel: str, w: np.ndarray, x: np.ndarray, bias: np.ndarray | None, steps: tuple,
               residuals: tuple[np.ndarray, ...]) -> np.ndarray:
    out = np.full((w.shape[0], x.shape[1]), np.nan, x.dtype)  # every element must be written
    return KERNELS[kernel].gemm(KERNELS[kernel].pack_weight(w), w.shape[0], x, out, bias, steps, residuals)


@settings(max_examples=80, deadline=None)
@given(kernel=st.sampled_from(list(KERNELS)), m=st.integers(1, 70), k=st.integers(1, 600),
       n=st.integers(1, 140), with_bias=st.booleans(), epilogue=st.sampled_from(list(EPILOGUES)),
       dtype=st.sampled_from([np.float32, np.float64]), small_blocks=st.booleans(), seed=st.integers(0, 50))
def test_kernels_match_torch_float64(kernel: str, m: int, k: int, n: int, with_bias: bool, epilogue: str,
                                     dtype: type, small_blocks: bool, seed: int) -> None:
    """Any shape: partial tiles at the right and bottom borders; with small_blocks, K over depth blocks
    of 64 (later blocks add to the sums in out) and the wide kernel's columns in blocks of 16 KiB."""
    rng = np.random.default_rng(seed)
    w, x = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(m).astype(dtype) if with_bias else None
    steps = EPILOGUES[epilogue]
    residuals = tuple(rng.standard_normal((m, n)).astype(dtype) for step in steps if step[0] == "add")
    with contextlib.ExitStack() as patches:
        if small_blocks:
            patches.enter_context(mock.patch.object(KERNELS[kernel], "KC", 64))
            patches.enter_context(mock.patch.object(gemm_jit, "BLOCK_BYTES", 16 << 10))
        got = run_kernel(kernel, w, x, bias, steps, residuals)
    assert got.dtype == dtype
    assert rel_err(got, reference(w, x, bias, steps, residuals)) <= budget(np.dtype(dtype).name, "im2col")


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_nan_and_inf_spread_as_in_torch(kernel: str) -> None:
    """NaN and inf in x, an inf weight meeting a zero of x (0 * inf = NaN), through ReLU (which keeps
    NaN): the same NaNs and infinities as torch, the finite values within budget."""
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((19, 40)).astype(np.float32), rng.standard_normal((40, 75)).astype(np.float32)
    x[3, 5], x[7, 60], x[9, 33] = np.nan, np.inf, -np.inf
    w[11, 20], x[20, 10] = np.inf, 0.0
    steps = (("add",), ("relu",))
    residual = rng.standard_normal((19, 75)).astype(np.float32)
    residual[4, 70] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        got = run_kernel(kernel, w, x, None, steps, (residual,))
        expected = reference(w, x, None, steps, (residual,))
    assert np.isnan(expected).any() and np.isinf(expected).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    infinite = np.isinf(expected)
    np.testing.assert_array_equal(got[infinite], expected[infinite])
    finite = np.isfinite(expected)
    assert rel_err(got[finite], expected[finite]) <= budget("float32", "im2col")


def test_route() -> None:
    """narrow for 28-64 columns in nearly full 7-wide tiles, wide (when routed) where 32-column tiles
    are nearly full, BLAS otherwise, for float32 with numba on; BLAS for float64 and CONVC_NUMBA=0."""
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}), \
            mock.patch.object(packed_gemm, "WIDE_ROUTED", True):
        assert [packed_gemm.route(np.dtype(np.float32), 64, n) for n in (1, 16, 36, 49, 64, 196, 784, 3136)] \
            == [None, None, None, "narrow", "narrow", None, "wide", "wide"]
        assert packed_gemm.route(np.dtype(np.float64), 64, 3136) is None
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        routed = "wide" if packed_gemm.WIDE_ROUTED else None
        assert packed_gemm.route(np.dtype(np.float32), 64, 3136) == routed
    with mock.patch.dict("os.environ", {jit.SWITCH: "0"}):
        assert packed_gemm.route(np.dtype(np.float32), 64, 3136) is None


# (input shape, kernel, stride, padding, output channels, the GEMM that runs): 1x1 on a 7x7 map
# (narrow), on 31x33 (1023 columns: wide, a last tile of 31 columns), 3x3 stride 2 gathered to 7x7
# (narrow) and to 9x17 (153 columns: BLAS, the wide kernel takes no gathered columns), 1x1 on 14x14
# (196 columns) and on 5x5 (25): BLAS
CONVS = [((1, 24, 7, 7), 1, 1, 0, 37, "narrow"), ((1, 20, 31, 33), 1, 1, 0, 13, "wide"),
         ((2, 12, 13, 14), 3, 2, 1, 20, "narrow"), ((1, 9, 17, 34), 3, 2, 1, 11, None),
         ((1, 8, 14, 14), 1, 1, 0, 9, None), ((1, 8, 5, 5), 1, 1, 0, 9, None)]


@pytest.mark.parametrize("epilogue", list(EPILOGUES) + ["three adds"], ids=list(EPILOGUES) + ["three adds"])
@pytest.mark.parametrize("shape,kernel,stride,pad,out_channels,runs", CONVS)
def test_convs_routed_match_torch_and_numpy(shape: tuple[int, ...], kernel: int, stride: int, pad: int,
                                            out_channels: int, runs: str | None, epilogue: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Ungrouped im2col convs run the GEMM packed_gemm routes them to (checked), within budget of torch
    float64 and of the same model run with CONVC_NUMBA=0 (np.matmul); three residual adds run after
    the GEMM instead."""
    steps = EPILOGUES.get(epilogue, (("add",), ("add",), ("relu",), ("add",)))
    graph = conv_graph(2, shape, out_channels, kernel, stride, pad, 1, 1, True, algo="im2col",
                       epilogue=steps)
    rng = np.random.default_rng(4)
    inputs = [rng.standard_normal(n.type.shape).astype(np.float32) for n in graph.inputs]
    calls: list[str] = []
    real = packed_gemm.gemm
    monkeypatch.setattr(packed_gemm, "gemm", lambda kind, *a: calls.append(kind) or real(kind, *a))
    monkeypatch.setattr(packed_gemm, "WIDE_ROUTED", True)  # the wide kernel's conv path, as if routed
    monkeypatch.setenv(jit.SWITCH, "1")
    model = backend.compile(graph, dtype="float32")
    compiled = model.run(*inputs)[0]
    assert calls == ([runs] * shape[0] if runs else [])
    monkeypatch.setenv(jit.SWITCH, "0")
    calls.clear()
    fallback = model.run(*inputs)[0]
    assert not calls
    expected = torch_conv(graph, inputs)
    assert rel_err(compiled, expected) <= budget("float32", "im2col")
    assert rel_err(compiled, fallback) <= 2 * budget("float32", "im2col")


def test_each_weight_is_packed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two routed convs: two weights packed on the first forward, none on the next three."""
    import convc

    monkeypatch.setenv(jit.SWITCH, "1")
    net = convc.Network("packed_once", seed=3)
    y = net.conv(net.input((1, 16, 7, 7)), 40, 1, name="a", ndim=2)
    net.output(net.conv(y, 24, 3, padding=1, name="b", ndim=2))
    for node in net.graph.nodes("conv2d"):
        net.graph.replace_node(node.replace(attrs={**node.attrs, "algo": "im2col"}))
    model = backend.compile(net.graph, dtype="float32")
    x = np.random.default_rng(0).standard_normal((1, 16, 7, 7)).astype(np.float32)
    before = packed_cache.packs_made
    first = model.run(x)[0]
    assert packed_cache.packs_made == before + 2
    for _ in range(3):
        np.testing.assert_array_equal(model.run(x)[0], first)
    assert packed_cache.packs_made == before + 2


def test_cost_model_prices_the_narrow_kernel() -> None:
    """passes/conv_cost_numpy.py (which may not import the backend) routes as packed_gemm does: an
    ungrouped float32 conv of the narrow kernel's positions is priced at PACKED_NARROW_FACTOR of its
    BLAS GEMM when compiled; one position more, float64, grouped or numba off: the BLAS price."""
    from convc.passes import conv_cost_numpy as cost
    from convc.passes.conv_cost import ConvShape
    from convc.passes.cpu_profile import SHIPPED

    assert cost.PACKED_NARROW_COLUMNS == (packed_gemm.NARROW_MIN_COLUMNS, packed_gemm.NARROW_MAX_COLUMNS)
    with mock.patch.dict("os.environ", {jit.SWITCH: "1"}):
        assert all(cost.packed_narrow(n) == (packed_gemm.route(np.dtype(np.float32), 8, n) == "narrow")
                   for n in range(1, 300))
    profile = SHIPPED["float32"]

    def gemm_part(width: int, groups: int = 1, compiled: bool = True,
                  dtype_profile: object = profile) -> float:
        shape = ConvShape(1, 512, 2048, groups, (1, width), (1, width), (1, 1), True)
        return cost.im2col_seconds(shape, dtype_profile, 4, compiled)  # type: ignore[arg-type]

    narrow = packed_gemm.NARROW_MAX_COLUMNS
    assert gemm_part(narrow) == pytest.approx(cost.PACKED_NARROW_FACTOR * gemm_part(narrow, compiled=False))
    assert gemm_part(narrow + 1) == gemm_part(narrow + 1, compiled=False)
    assert gemm_part(narrow, groups=2) == gemm_part(narrow, groups=2, compiled=False)
    assert gemm_part(narrow, dtype_profile=SHIPPED["float64"]) == \
        gemm_part(narrow, compiled=False, dtype_profile=SHIPPED["float64"])
