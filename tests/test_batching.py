"""Batch buckets, re-typing a graph for another batch size, and what cannot be re-batched."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convc
from convc.batching import batch_buckets, bucket_for, pad_batch, parse_batch_range, rebatch
from convc.errors import BackendError, GraphError, OptionError


@given(st.integers(1, 5000), st.integers(1, 5000))
@settings(max_examples=200, deadline=None)
def test_buckets_cover_every_batch_up_to_the_maximum_at_most_twice_over(lo: int, hi: int) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    buckets = batch_buckets(hi, lo)
    assert buckets[0] == lo and buckets[-1] == hi and list(buckets) == sorted(set(buckets))
    for batch in {1, lo, hi, (lo + hi) // 2, max(lo, hi - 1)}:
        b = bucket_for(batch, buckets, "m")
        assert b >= batch and (b <= max(2 * batch, lo) or b == hi)


def test_bucket_examples_and_errors() -> None:
    assert batch_buckets(64) == (1, 2, 4, 8, 16, 32, 64)
    assert batch_buckets(48, 4) == (4, 8, 16, 32, 48)
    assert parse_batch_range("1..64") == (1, 64) and parse_batch_range("8") == (8, 8)
    with pytest.raises(BackendError, match="batch 65 is larger than the maximum .* max_batch=65"):
        bucket_for(65, batch_buckets(64), "m")
    for bad in ("0..4", "8..2", "a..b", "1..x"):
        with pytest.raises(OptionError, match="--batch"):
            parse_batch_range(bad)
    with pytest.raises(OptionError, match="max_batch=0"):
        batch_buckets(0)


def test_pad_batch_appends_zero_rows() -> None:
    import torch

    x = np.ones((2, 3))
    assert pad_batch(x, 4).tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0]]
    t = pad_batch(torch.ones(1, 2, dtype=torch.float64), 3)
    assert t.dtype == torch.float64 and t.tolist() == [[1, 1], [0, 0], [0, 0]]


def test_rebatched_graph_types_every_node_for_the_new_batch() -> None:
    net = convc.models.get("resnet18", input_size=32)
    g = rebatch(net.graph, 5)
    assert all(n.type.shape[0] == 5 for n in g.nodes() if n.op != "param")
    assert g.params is not net.graph.params and g.params.keys() == net.graph.params.keys()
    g.verify()
    assert net.graph.inputs[0].type.shape[0] == 1  # the original is untouched


def test_softmax_over_the_batch_cannot_be_rebatched() -> None:
    net = convc.Network("mix")
    x = net.input((2, 4))
    net.output(net.softmax(x, axis=0))
    with pytest.raises(GraphError, match="node 'softmax.*does not keep the 2 examples apart"):
        rebatch(net.graph, 4)
