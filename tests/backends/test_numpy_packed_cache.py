"""backends/numpy_ref/packed_cache.py: a weight's kernel layout made once per array, never stale: the
source frozen, a change through another view caught by the sample, NaN weights still cached, the entry
gone with the array."""
from __future__ import annotations

import gc

import numpy as np
import pytest

from convc.backends.numpy_ref import packed_cache


def _counting_pack():
    calls: list[int] = []

    def pack(w: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.ascontiguousarray(w.T) * 2
    return pack, calls


def test_made_once_per_array_and_key():
    pack, calls = _counting_pack()
    w = np.arange(12.0).reshape(3, 4)
    first = packed_cache.packed(w, "k", pack)
    np.testing.assert_array_equal(first, w.T * 2)
    assert packed_cache.packed(w, "k", pack) is first
    assert len(calls) == 1
    packed_cache.packed(w, "other", pack)
    packed_cache.packed(w.copy(), "k", pack)
    assert len(calls) == 3


def test_the_source_is_frozen_so_an_in_place_write_raises():
    pack, _ = _counting_pack()
    w = np.ones((4, 4), np.float32)
    packed_cache.packed(w, "k", pack)
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 5.0


def test_a_change_through_a_writable_base_is_packed_afresh():
    pack, calls = _counting_pack()
    base = np.ones(64, np.float32)
    w = base[:32].reshape(4, 8)
    packed_cache.packed(w, "k", pack)
    base[:] = 3.0  # new weights loaded into the memory the frozen view shares
    again = packed_cache.packed(w, "k", pack)
    assert len(calls) == 2
    np.testing.assert_array_equal(again, np.full((8, 4), 6.0, np.float32))


def test_nan_weights_stay_cached():
    pack, calls = _counting_pack()
    w = np.full((4, 4), np.nan)
    packed_cache.packed(w, "k", pack)
    packed_cache.packed(w, "k", pack)
    assert len(calls) == 1


def test_the_entry_goes_with_the_array():
    pack, _ = _counting_pack()
    w = np.ones((2, 2))
    packed_cache.packed(w, "gone", pack)
    key = (id(w), "gone")
    assert key in packed_cache._CACHE
    del w
    gc.collect()
    assert key not in packed_cache._CACHE
