"""Flatten of a channels-last map with spatial size > 1: when only linear layers read it, it stays a view of
the NHWC buffer and the linears' weight columns are permuted at compile time (no transpose copy); a
flatten that is a graph output, has another reader or sits in a concat slice is still copied into NCHW
order. Each case is checked against the NumPy backend in float64."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from triton_check import check, compile_triton, random_inputs, reference

import convc
from convc.backends.triton.packing import channels_last_columns
from convc.dsl import Network, Value
from convc.numerics import budget, rel_err


def build(shape: tuple[int, ...], body: Callable[[Network, Value], Value | tuple[Value, ...]]) -> Network:
    net = Network("flat", seed=4)
    out = body(net, net.input(shape))
    net.output(*(out if isinstance(out, tuple) else (out,)))
    return net


def copy_launches(model: Any) -> list[str]:
    return [launch.node for launch in model.launches if launch.name == "strided_copy_kernel"]


def test_permuted_columns_read_channels_last_features_as_the_original_reads_nchw() -> None:
    rng = np.random.default_rng(0)
    c, h, w = 3, 2, 4
    weight = rng.normal(size=(5, c * h * w))
    fmap = rng.normal(size=(c, h, w))
    nchw = fmap.reshape(-1)  # feature index c * h * w + ...
    nhwc = fmap.transpose(1, 2, 0).reshape(-1)
    np.testing.assert_allclose(channels_last_columns(weight, (c, h, w)) @ nhwc, weight @ nchw, rtol=1e-12)


def _two_readers(n: Network, f: Value, other: Callable[[Value], Value], width: int = 5
                 ) -> tuple[Value, Value]:
    """A linear layer and `other` both read the flattened value f."""
    return n.linear(f, width), other(f)


def _flatten_of_a_concat_operand(n: Network, x: Value) -> tuple[Value, Value]:
    """`a` is written into its slice of the concat output, so its pixels are further apart than its width."""
    a = n.sigmoid(x)
    return n.concat([a, n.relu(x)], axis=1), n.linear(n.flatten(a, name="f"), 4)


VIEW_CASES: dict[str, tuple[tuple[int, ...], Callable[[Network, Value], Any]]] = {
    "conv_flatten_linear": ((2, 3, 6, 5), lambda n, x: n.linear(n.flatten(n.relu(n.conv2d(x, 6, 3))), 7)),
    "two_linears": ((2, 4, 3, 3), lambda n, x: _two_readers(n, n.flatten(x), lambda f: n.linear(f, 3))),
    "through_dropout": ((2, 4, 3, 2), lambda n, x: n.linear(n.dropout(n.flatten(n.relu(x)), 0.5), 6)),
    "conv1d": ((2, 5, 7), lambda n, x: n.linear(n.flatten(n.conv1d(x, 4, 3)), 6)),
    "conv3d": ((1, 3, 2, 3, 4), lambda n, x: n.linear(n.flatten(n.conv3d(x, 4, 1)), 5)),
    "fused_epilogue_relu": ((2, 4, 3, 3), lambda n, x: n.relu(n.linear(n.flatten(n.relu(x)), 9))),
}


@pytest.mark.parametrize("case", VIEW_CASES)
@pytest.mark.parametrize("opt_level", [0, 2])
def test_flatten_into_linears_is_a_view(case: str, opt_level: int) -> None:
    shape, body = VIEW_CASES[case]
    net = build(shape, body)
    model: Any = convc.compile(net, backend="triton", dtype="float32", device="cpu", opt_level=opt_level)
    xs = random_inputs(net)
    for out, ref in zip(model.run(*xs), reference(net, *xs), strict=True):
        assert rel_err(out, ref) <= budget("float32")
    assert copy_launches(model) == []
    assert model._current.plan.channels_last_features


COPY_CASES: dict[str, tuple[tuple[int, ...], Callable[[Network, Value], Any]]] = {
    "also_an_output": ((2, 3, 2, 3), lambda n, x: _two_readers(n, n.flatten(x, name="f"), lambda f: f)),
    "another_reader": ((2, 3, 2, 3), lambda n, x: _two_readers(n, n.flatten(x, name="f"), n.relu, width=18)),
    "concat_slice": ((2, 3, 3, 3), lambda n, x: _flatten_of_a_concat_operand(n, x)),
}


@pytest.mark.parametrize("case", COPY_CASES)
def test_flatten_that_must_be_nchw_is_copied(case: str) -> None:
    shape, body = COPY_CASES[case]
    net = build(shape, body)
    check(net, "float32")
    model = compile_triton(net)
    assert "f" in copy_launches(model)
    assert "f" not in model._current.plan.channels_last_features


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_and_a_new_batch_size(dtype: str) -> None:
    net = build((2, 4, 3, 3), lambda n, x: n.linear(n.flatten(n.relu(n.conv2d(x, 8, 3, padding=1))), 6))
    check(net, dtype)
    model = compile_triton(net, dtype)
    [x] = random_inputs(net)
    bigger = np.concatenate([x, x[:1]])
    [out] = model.run(bigger)
    [first] = model.run(x)
    expected = np.concatenate([first, first[:1]])
    np.testing.assert_allclose(out, expected, rtol=0, atol=budget(dtype) * abs(first).max())
