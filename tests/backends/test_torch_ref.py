"""The torch backends against torch.nn.functional in float64 (computed here, from the graph's parameters),
hand-computed NumPy values and the course's worked examples (REFERENCE.md)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convc.dsl import Network, Value
from convc.errors import BackendError, OptionError
from convc.ir import Graph
from convc.numerics import budget, rel_err
from convc.ops import SCHEMAS
from convc.registry import get_backend

Params = dict[str, torch.Tensor]
Ref = Callable[[list[torch.Tensor], Params], torch.Tensor]


def randomize_params(graph: Graph, seed: int = 0) -> None:
    """Float64 random parameters everywhere (variances positive), so no slot is trivially 0 or 1."""
    rng = np.random.default_rng(seed)
    for name, arr in list(graph.params.items()):
        value = rng.standard_normal(arr.shape)
        graph.params[name] = np.abs(value) + 0.5 if name.endswith("running_var") else value


def compile_cpu(graph: Graph, dtype: str = "float64", backend: str = "torch", **options: object):
    graph.verify()
    return get_backend(backend).compile(graph, dtype=dtype, device="cpu", **options)


def random_inputs(graph: Graph, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n.type.shape) for n in graph.inputs]


def torch_params(graph: Graph) -> Params:
    return {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in graph.params.items()}


def net_with(shapes: list[tuple[int, ...]], build: Callable[..., Value]) -> Network:
    net = Network("case", seed=3)
    xs = [net.input(s, name=f"x{i}") for i, s in enumerate(shapes)]
    net.output(build(net, *xs))
    randomize_params(net.graph)
    return net


S = (2, 4, 7, 7)  # the default 2D input
CASES: dict[str, tuple[list[tuple[int, ...]], Callable[..., Value], Ref]] = {
    "conv1d_groups": ([(2, 4, 9)], lambda n, x: n.conv1d(x, 6, 3, stride=2, padding=1, groups=2, name="l"),
                      lambda x, p: F.conv1d(x[0], p["l.weight"], p["l.bias"], 2, 1, 1, 2)),
    "conv2d_dilated": ([S], lambda n, x: n.conv2d(x, 5, 3, padding=2, dilation=2, name="l"),
                       lambda x, p: F.conv2d(x[0], p["l.weight"], p["l.bias"], 1, 2, 2)),
    "conv2d_depthwise_nobias": ([S], lambda n, x: n.conv2d(x, 4, 3, stride=2, groups=4, bias=False, name="l"),
                                lambda x, p: F.conv2d(x[0], p["l.weight"], None, 2, 0, 1, 4)),
    "conv2d_asymmetric": ([S], lambda n, x: n.conv2d(x, 3, 2, padding=((0, 1), (2, 0)), name="l"),
                          lambda x, p: F.conv2d(F.pad(x[0], (2, 0, 0, 1)), p["l.weight"], p["l.bias"])),
    # "same", kernel 4, stride 2 on 7x8: out 4x4, total padding 3 rows (1, 2) and 2 columns (1, 1).
    "conv2d_same_even": ([(1, 2, 7, 8)], lambda n, x: n.conv2d(x, 3, 4, stride=2, padding="same", name="l"),
                         lambda x, p: F.conv2d(F.pad(x[0], (1, 1, 1, 2)), p["l.weight"], p["l.bias"], 2)),
    "conv3d": ([(1, 2, 5, 6, 5)], lambda n, x: n.conv3d(x, 3, (3, 2, 3), stride=(1, 2, 1), padding=(1, 0, 1),
                                                        name="l"),
               lambda x, p: F.conv3d(x[0], p["l.weight"], p["l.bias"], (1, 2, 1), (1, 0, 1))),
    "linear": ([(3, 6)], lambda n, x: n.linear(x, 4, name="l"),
               lambda x, p: F.linear(x[0], p["l.weight"], p["l.bias"])),
    "max_pool1d": ([(2, 3, 10)], lambda n, x: n.max_pool1d(x, 3, stride=2, padding=1),
                   lambda x, p: F.max_pool1d(x[0], 3, 2, 1)),
    "max_pool2d_ceil": ([S], lambda n, x: n.max_pool2d(x, 2, ceil_mode=True),
                        lambda x, p: F.max_pool2d(x[0], 2, 2, ceil_mode=True)),
    "max_pool3d": ([(1, 2, 4, 5, 6)], lambda n, x: n.max_pool3d(x, (2, 3, 3), stride=(2, 2, 2), padding=(0, 1, 1)),
                   lambda x, p: F.max_pool3d(x[0], (2, 3, 3), 2, (0, 1, 1))),
    "avg_pool1d_excl_pad": ([(2, 3, 10)], lambda n, x: n.avg_pool1d(x, 3, stride=2, padding=1,
                                                                    count_include_pad=False),
                            lambda x, p: F.avg_pool1d(x[0], 3, 2, 1, count_include_pad=False)),
    "avg_pool2d_ceil": ([S], lambda n, x: n.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
                        lambda x, p: F.avg_pool2d(x[0], 3, 2, 1, ceil_mode=True)),
    "avg_pool3d": ([(1, 2, 4, 5, 6)], lambda n, x: n.avg_pool3d(x, 2, stride=(1, 2, 2), count_include_pad=False),
                   lambda x, p: F.avg_pool3d(x[0], 2, (1, 2, 2), count_include_pad=False)),
    "global_avg_pool": ([S], lambda n, x: n.global_avg_pool(x), lambda x, p: x[0].mean((2, 3), keepdim=True)),
    "global_max_pool3d": ([(1, 3, 2, 3, 4)], lambda n, x: n.global_max_pool(x),
                          lambda x, p: x[0].amax((2, 3, 4), keepdim=True)),
    "batch_norm": ([S], lambda n, x: n.batch_norm(x, eps=1e-3, name="l"),
                   lambda x, p: F.batch_norm(x[0], p["l.running_mean"], p["l.running_var"], p["l.weight"],
                                             p["l.bias"], False, eps=1e-3)),
    "scale_shift": ([S], lambda n, x: n._emit("scale_shift", [x], {}, "l"),
                    lambda x, p: x[0] * p["l.weight"][:, None, None] + p["l.bias"][:, None, None]),
    "lrn": ([S], lambda n, x: n.lrn(x, size=3, alpha=0.5, beta=0.75, k=2.0),
            lambda x, p: F.local_response_norm(x[0], 3, 0.5, 0.75, 2.0)),
    "lrn_3d_input": ([(2, 6, 5)], lambda n, x: n.lrn(x, size=4, alpha=1.0, beta=0.5, k=1.0),
                     lambda x, p: F.local_response_norm(x[0], 4, 1.0, 0.5, 1.0)),
    "relu": ([S], lambda n, x: n.relu(x), lambda x, p: F.relu(x[0])),
    "leaky_relu": ([S], lambda n, x: n.leaky_relu(x, 0.2), lambda x, p: F.leaky_relu(x[0], 0.2)),
    "sigmoid": ([S], lambda n, x: n.sigmoid(x), lambda x, p: torch.sigmoid(x[0])),
    "tanh": ([S], lambda n, x: n.tanh(x), lambda x, p: torch.tanh(x[0])),
    "elu": ([S], lambda n, x: n.elu(x, 0.7), lambda x, p: F.elu(x[0], 0.7)),
    "dropout": ([S], lambda n, x: n.dropout(x, 0.5), lambda x, p: x[0]),
    "identity": ([S], lambda n, x: n._emit("identity", [x], {}, None), lambda x, p: x[0]),
    "maxout": ([S], lambda n, x: n.maxout(x, 2), lambda x, p: x[0].reshape(2, 2, 2, 7, 7).amax(2)),
    "softmax_channels": ([S], lambda n, x: n.softmax(x, axis=1), lambda x, p: F.softmax(x[0], 1)),
    "softmax_last_axis": ([S], lambda n, x: n.softmax(x, axis=-1), lambda x, p: F.softmax(x[0], 3)),
    "add": ([S, S], lambda n, a, b: n.add(a, b), lambda x, p: x[0] + x[1]),
    "bias_add": ([(2, 1, 5, 5)], lambda n, x: n.bias_add(x, name="l"), lambda x, p: x[0] + p["l.bias"]),
    "concat_channels": ([S, (2, 3, 7, 7)], lambda n, a, b: n.concat([a, b]), lambda x, p: torch.cat(x, 1)),
    "concat_width": ([S, (2, 4, 7, 2)], lambda n, a, b: n.concat([a, b], axis=3), lambda x, p: torch.cat(x, 3)),
    "flatten": ([S], lambda n, x: n.flatten(x), lambda x, p: x[0].reshape(2, -1)),
    "clip": ([S], lambda n, x: n.clip(x, -0.5, 0.7), lambda x, p: x[0].clamp(-0.5, 0.7)),
    "hardswish": ([S], lambda n, x: n.hardswish(x), lambda x, p: F.hardswish(x[0])),
    "hardsigmoid": ([S], lambda n, x: n.hardsigmoid(x), lambda x, p: F.hardsigmoid(x[0])),
    "silu": ([S], lambda n, x: n.silu(x), lambda x, p: F.silu(x[0])),
    "gelu": ([S], lambda n, x: n.gelu(x), lambda x, p: F.gelu(x[0])),
    "gelu_tanh": ([S], lambda n, x: n.gelu(x, "tanh"), lambda x, p: F.gelu(x[0], approximate="tanh")),
    "mul_scale": ([S, (2, 4, 1, 1)], lambda n, a, b: n.mul(a, b), lambda x, p: x[0] * x[1]),
    "layer_norm": ([S], lambda n, x: n.layer_norm(x, name="l"),
                   lambda x, p: F.layer_norm(x[0].movedim(1, -1), (4,), p["l.weight"],
                                             p["l.bias"]).movedim(-1, 1)),
    "channel_shuffle": ([S], lambda n, x: n.channel_shuffle(x, 2), lambda x, p: F.channel_shuffle(x[0], 2)),
    "slice": ([S], lambda n, x: n.slice(x, 1, 3), lambda x, p: x[0][:, 1:3]),
    "channel_scale": ([S], lambda n, x: n.channel_scale(x, name="l"),
                      lambda x, p: x[0] * p["l.weight"][:, None, None]),
    "adaptive_avg_pool": ([S], lambda n, x: n.adaptive_avg_pool(x, (3, 5)),
                          lambda x, p: F.adaptive_avg_pool2d(x[0], (3, 5))),
    "flatten_from_2": ([S], lambda n, x: n.flatten(x, start_dim=2), lambda x, p: x[0].reshape(2, 4, -1)),
}
DTYPES = ("float64", "float32", "float16", "bfloat16")


def test_every_op_has_a_kernel_and_a_case() -> None:
    ops = set(SCHEMAS) - {"input", "param"}
    assert {op for op, _ in get_backend("torch").lowerings} == ops
    covered = {n.op for case in CASES.values() for n in net_with(case[0], case[1]).graph.nodes()}
    assert ops <= covered


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_torch_functional_float64(case: str, dtype: str) -> None:
    shapes, build, ref = CASES[case]
    net = net_with(shapes, build)
    inputs = random_inputs(net.graph)
    expected = ref([torch.from_numpy(x) for x in inputs], torch_params(net.graph)).numpy()
    [actual] = compile_cpu(net.graph, dtype).run(*inputs)
    assert actual.shape == expected.shape
    assert rel_err(actual, expected) <= budget(dtype)


# ---------------------------------------------------------------------------- fused epilogues
def apply_steps_numpy(y: np.ndarray, steps: tuple, residuals: list[np.ndarray]) -> np.ndarray:
    """The epilogue semantics written out in NumPy: each ("add",) adds the next residual."""
    pending = iter(residuals)
    for step in steps:
        kind = step[0]
        if kind == "add":
            y = y + next(pending)
        elif kind == "relu":
            y = np.maximum(y, 0)
        elif kind == "leaky_relu":
            y = np.where(y > 0, y, step[1] * y)
        elif kind == "sigmoid":
            y = 1 / (1 + np.exp(-y))
        elif kind == "tanh":
            y = np.tanh(y)
        else:
            assert kind == "elu"
            y = np.where(y > 0, y, step[1] * np.expm1(np.minimum(y, 0)))
    return y


EPILOGUES = [(("relu",),), (("leaky_relu", 0.1),), (("sigmoid",),), (("tanh",),), (("elu", 0.5),),
             (("add",),), (("add",), ("relu",)), (("relu",), ("add",), ("add",)), (("add",), ("elu", 1.0))]


def fuse_epilogue_by_hand(graph: Graph, layer: str, steps: tuple, residuals: list[str]) -> None:
    node = graph[layer]
    n_add = sum(1 for s in steps if s[0] == "add")
    inputs = node.inputs[:1] + tuple(residuals[:n_add]) + node.inputs[1:]
    graph.replace_node(node.replace(inputs=inputs, attrs={**node.attrs, "epilogue": steps}))


@pytest.mark.parametrize("layer", ["conv2d", "linear"])
@pytest.mark.parametrize("steps", EPILOGUES, ids=str)
def test_fused_epilogue(layer: str, steps: tuple) -> None:
    x_shape, out_shape = ((1, 3, 6, 6), (1, 4, 6, 6)) if layer == "conv2d" else ((2, 5), (2, 3))
    net = Network("epi", seed=0)
    x = net.input(x_shape, name="x")
    res = [net.input(out_shape, name=f"r{i}").name for i in range(2)]
    net.output(net.conv2d(x, 4, 3, padding=1, name="l") if layer == "conv2d" else net.linear(x, 3, name="l"))
    randomize_params(net.graph)
    fuse_epilogue_by_hand(net.graph, "l", steps, res)
    xs = random_inputs(net.graph)
    w, b = (torch.from_numpy(net.graph.params[f"l.{s}"]) for s in ("weight", "bias"))
    xt = torch.from_numpy(xs[0])
    core = (F.conv2d(xt, w, b, padding=1) if layer == "conv2d" else F.linear(xt, w, b)).numpy()
    expected = apply_steps_numpy(core, steps, xs[1:])
    for dtype in ("float64", "float32"):
        [actual] = compile_cpu(net.graph, dtype).run(*xs)
        assert rel_err(actual, expected) <= budget(dtype), dtype


def test_conv_algo_attribute_is_ignored() -> None:
    net = net_with([S], lambda n, x: n.conv2d(x, 4, 3, padding=1, name="l"))
    xs = random_inputs(net.graph)
    [base] = compile_cpu(net.graph).run(*xs)
    assert get_backend("torch").capabilities.conv_algos == ("cudnn",)
    for algo in ("direct", "winograd_4x4", "cudnn", "anything"):
        node = net.graph["l"]
        net.graph.replace_node(node.replace(attrs={**node.attrs, "algo": algo}))
        [out] = compile_cpu(net.graph).run(*xs)
        np.testing.assert_array_equal(out, base)


# ---------------------------------------------------------------------------- hand-computed NumPy values
def run_single(shape: tuple[int, ...], build: Callable[..., Value], x: np.ndarray,
               params: dict[str, np.ndarray] | None = None) -> np.ndarray:
    net = Network("hand", seed=0)
    net.output(build(net, net.input(shape)))
    net.graph.params.update(params or {})
    return compile_cpu(net.graph).run(x)[0]


def test_lrn_by_hand() -> None:
    x = np.arange(1.0, 6.0).reshape(1, 5, 1, 1)  # channels 1..5, size 3 looks at c-1, c, c+1
    sums = np.array([1 + 4, 1 + 4 + 9, 4 + 9 + 16, 9 + 16 + 25, 16 + 25])
    expected = x.ravel() / (2.0 + 0.3 / 3 * sums) ** 0.75
    actual = run_single(x.shape, lambda n, v: n.lrn(v, size=3, alpha=0.3, beta=0.75, k=2.0), x)
    np.testing.assert_allclose(actual.ravel(), expected, rtol=1e-12)


def test_maxout_by_hand() -> None:
    x = np.array([3.0, -1.0, 2.0, 5.0, -4.0, -2.0]).reshape(1, 6, 1)  # k=3: max(3,-1,2), max(5,-4,-2)
    np.testing.assert_array_equal(run_single(x.shape, lambda n, v: n.maxout(v, 3), x).ravel(), [3.0, 5.0])


def test_softmax_worked_example() -> None:
    x = np.array([[3.2, 5.1, -1.7]])
    actual = run_single(x.shape, lambda n, v: n.softmax(v), x)
    e = np.exp(x - x.max())
    np.testing.assert_allclose(actual, e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(actual.round(2), [[0.13, 0.87, 0.00]])  # REFERENCE.md


def test_avg_pool_ceil_mode_excluding_padding_by_hand() -> None:
    # 1D, kernel 3, stride 2, padding 1, ceil_mode: windows [-1..1], [1..3], [3..5], [5..7] over 0..5.
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]).reshape(1, 1, 6)
    expected = [(1 + 2) / 2, (2 + 4 + 8) / 3, (8 + 16 + 32) / 3, 32 / 1]
    actual = run_single(x.shape, lambda n, v: n.avg_pool1d(v, 3, stride=2, padding=1, ceil_mode=True,
                                                           count_include_pad=False), x)
    np.testing.assert_allclose(actual.ravel(), expected, rtol=1e-12)
    # Counting the padding divides the first window by 3; the last one runs past the padding, so 2.
    actual = run_single(x.shape, lambda n, v: n.avg_pool1d(v, 3, stride=2, padding=1, ceil_mode=True), x)
    np.testing.assert_allclose(actual.ravel(), [3 / 3, 14 / 3, 56 / 3, 32 / 2], rtol=1e-12)


def test_max_pool_worked_example() -> None:
    x = np.array([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], float).reshape(1, 1, 4, 4)
    actual = run_single(x.shape, lambda n, v: n.max_pool2d(v, 2), x)
    np.testing.assert_array_equal(actual[0, 0], [[6, 8], [3, 4]])


@pytest.mark.parametrize("stride, expected", [
    (1, [[0, 3, 8, 4], [9, 19, 25, 10], [21, 37, 43, 16], [6, 7, 8, 0]]),  # padding example
    ((3, 2), [[0, 8], [6, 8]]),                                             # stride example
])
def test_conv_worked_examples(stride: int | tuple[int, int], expected: list[list[int]]) -> None:
    # The course's "convolution" is cross-correlation, as in every CNN framework.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    k = np.array([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    actual = run_single(x.shape, lambda n, v: n.conv2d(v, 1, 2, stride=stride, padding=1, bias=False, name="c"),
                        x, {"c.weight": k})
    np.testing.assert_array_equal(actual[0, 0], expected)


def test_conv_as_matmul_worked_example() -> None:
    x = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], float).reshape(1, 1, 4, 4)
    k = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], float).reshape(1, 1, 3, 3)
    actual = run_single(x.shape, lambda n, v: n.conv2d(v, 1, 3, bias=False, name="c"), x, {"c.weight": k})
    np.testing.assert_array_equal(actual[0, 0], [[122, 148], [126, 134]])


# ---------------------------------------------------------------------------- calling conventions
def small_cnn() -> Network:
    net = Network("small", seed=0)
    x = net.input((2, 3, 8, 8))
    y = net.relu(net.conv2d(x, 4, 3, padding=1, name="conv"))
    feats = net.max_pool2d(y, 2)
    net.output(net.linear(net.flatten(feats), 5, name="fc"), feats)
    return net


def test_call_takes_tensors_or_numpy_and_run_returns_numpy() -> None:
    net = small_cnn()
    model = compile_cpu(net.graph, "float32")
    x = random_inputs(net.graph)[0]
    logits, feats = model(torch.from_numpy(x).float())
    assert isinstance(logits, torch.Tensor) and logits.dtype == torch.float32 and logits.shape == (2, 5)
    assert feats.shape == (2, 4, 4, 4)
    from_numpy = model(x)  # a float64 NumPy array is converted to the model's dtype
    torch.testing.assert_close(from_numpy[0], logits)
    outs = model.run(x)
    assert [type(o) for o in outs] == [np.ndarray, np.ndarray]
    assert outs[0].dtype == np.float32
    np.testing.assert_array_equal(outs[0], logits.numpy())
    assert model.run(x)[0].dtype == np.float32
    assert compile_cpu(net.graph, "bfloat16").run(x)[0].dtype == np.float32  # NumPy has no bfloat16
    assert compile_cpu(net.graph, "float16").run(x)[0].dtype == np.float16


def test_channels_last_gives_the_same_values_in_nhwc_memory() -> None:
    net = small_cnn()
    x = random_inputs(net.graph)[0]
    plain = compile_cpu(net.graph, "float64")
    nhwc = compile_cpu(net.graph, "float64", channels_last=True)
    [w] = [t for name, t in nhwc.program.params.items() if name == "conv.weight"]
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    logits, feats = nhwc(x)
    assert feats.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(nhwc.run(x), plain.run(x)):
        assert rel_err(a, b) <= budget("float64")


def test_tf32_option_restores_the_global_flags() -> None:
    from convc.backends.torch_ref.model import tf32_precision

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with tf32_precision(not before[1]):
        assert torch.backends.cudnn.allow_tf32 is (not before[1])
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    net = small_cnn()
    x = random_inputs(net.graph)[0]
    a = compile_cpu(net.graph, "float32", tf32=True).run(x)[0]  # no TF32 on a CPU: same numbers
    np.testing.assert_array_equal(a, compile_cpu(net.graph, "float32").run(x)[0])


def test_float32_model_within_budget_of_float64() -> None:
    net = small_cnn()
    x = random_inputs(net.graph)[0]
    ref = compile_cpu(net.graph, "float64").run(x)
    for dtype in ("float32", "float16", "bfloat16"):
        for a, b in zip(compile_cpu(net.graph, dtype).run(x), ref):
            assert rel_err(a, b) <= budget(dtype, whole_model=True), dtype
    assert 0 < rel_err(compile_cpu(net.graph, "float32").run(x)[0], ref[0])  # really ran in float32


# ---------------------------------------------------------------------------- user errors
def test_wrong_inputs_raise_backend_errors_naming_the_input() -> None:
    net = small_cnn()
    model = compile_cpu(net.graph, "float32")
    with pytest.raises(BackendError, match=r"input 'x'.*expected shape \(2, 3, 8, 8\), got \(2, 3, 8, 9\)"):
        model(torch.zeros(2, 3, 8, 9))
    with pytest.raises(BackendError, match=r"takes 1 input"):
        model(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    with pytest.raises(BackendError, match=r"input 'x'.*expected a torch.float32 tensor.*got torch.float64"):
        model(torch.zeros(2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(BackendError, match=r"input 'x'.*floating-point array.*int64"):
        model.run(np.zeros((2, 3, 8, 8), np.int64))
    with pytest.raises(BackendError, match=r"input 'x'.*torch.Tensor or numpy.ndarray, got list"):
        model([[0.0]])


def test_bad_options_raise_option_errors() -> None:
    graph = small_cnn().graph
    with pytest.raises(OptionError, match="no option.*channel_last.*channels_last"):
        compile_cpu(graph, channel_last=True)
    with pytest.raises(OptionError, match="channels_last='yes' must be True or False"):
        compile_cpu(graph, channels_last="yes")
    with pytest.raises(OptionError, match="device='tpu'"):
        get_backend("torch").compile(graph, device="tpu")
    with pytest.raises(OptionError, match="mode='fastest'"):
        compile_cpu(graph, backend="torch-compile", mode="fastest")
    with pytest.raises(BackendError, match="dtype int8"):
        get_backend("torch").compile(graph, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="device='cuda'.*no CUDA device"):
            get_backend("torch").compile(graph, device="cuda")
        assert get_backend("torch").compile(graph).device.type == "cpu"  # the default falls back


def test_kernel_failure_names_the_node() -> None:
    net = small_cnn()
    model = compile_cpu(net.graph, "float32")
    model.program.params["conv.weight"] = torch.zeros(4, 5, 3, 3)  # sabotage: 5 input channels
    with pytest.raises(BackendError, match="node 'conv' \\(conv2d\\)"):
        model.run(random_inputs(net.graph)[0])


# ---------------------------------------------------------------------------- torch.compile
def every_op_network() -> Network:
    net = Network("all_ops", seed=0)
    x = net.input((1, 4, 8, 8))
    y = net.relu(net.conv2d(x, 4, 3, padding="same", name="c1"))
    y = net.maxout(net.lrn(net.batch_norm(y, name="bn")), 2)
    y = net.concat([net.avg_pool2d(y, 2), net.max_pool2d(y, 2)])
    y = net.softmax(net.elu(net.leaky_relu(y)) + net.tanh(net.sigmoid(y)))
    y = net.flatten(net.global_avg_pool(net.dropout(y)))
    net.output(net.linear(y, 3, name="fc"))
    randomize_params(net.graph)
    return net


def test_compile_forward_traces_as_one_graph() -> None:
    """The forward torch.compile sees must trace with no graph break (backend 'eager': no codegen)."""
    net = every_op_network()
    model = compile_cpu(net.graph, "float64")
    traced = torch.compile(model.program.forward, backend="eager", fullgraph=True, dynamic=False)
    [x] = model.prepare(*random_inputs(net.graph))
    with torch.inference_mode():
        torch.testing.assert_close(traced(x)[0], model(x))


@pytest.mark.slow
def test_torch_compile_backend_matches_eager() -> None:
    # Inductor on a CPU compiles C++ with gcc: tens of seconds for the first call, hence `slow`.
    net = every_op_network()
    x = random_inputs(net.graph)[0]
    compiled = compile_cpu(net.graph, "float32", backend="torch-compile")
    assert compiled.backend == "torch-compile"
    eager = compile_cpu(net.graph, "float64").run(x)[0]
    assert rel_err(compiled.run(x)[0], eager) <= budget("float32", whole_model=True)
    assert rel_err(compiled.run(x + 1.0)[0], compile_cpu(net.graph).run(x + 1.0)[0]) <= budget(
        "float32", whole_model=True)


# ---------------------------------------------------------------------------- CUDA (skipped without one)
@pytest.mark.gpu
@pytest.mark.parametrize("dtype, tf32", [("float32", False), ("float32", True), ("float16", False),
                                         ("bfloat16", False)])
def test_cuda_channels_last_matches_cpu_float64(dtype: str, tf32: bool) -> None:
    net = every_op_network()
    x = random_inputs(net.graph)[0]
    ref = compile_cpu(net.graph, "float64").run(x)[0]
    model = get_backend("torch").compile(net.graph, dtype=dtype, device="cuda", channels_last=True, tf32=tf32)
    assert model(x).device.type == "cuda"
    assert rel_err(model.run(x)[0], ref) <= budget("tf32" if tf32 else dtype, whole_model=True)


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_torch_compile_reduce_overhead() -> None:
    net = small_cnn()
    x = random_inputs(net.graph)[0]
    ref = compile_cpu(net.graph, "float64").run(x)
    model = get_backend("torch-compile").compile(net.graph, dtype="float16", device="cuda", channels_last=True,
                                                 mode="reduce-overhead")
    for _ in range(3):  # warm-up, recording, then replay of the CUDA graph
        for a, b in zip(model.run(x), ref):
            assert rel_err(a, b) <= budget("float16", whole_model=True)
