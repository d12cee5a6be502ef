"""Weights re-laid out once per layer for the compiled kernels, kept while the weight array lives.

A register-blocked kernel (packed_gemm.py's GEMMs, conv_grouped_simd.py) reads its weights in the order
of its micro-kernel, not the conv's (K, C, kh, kw); re-laying them out on every forward would cost a pass
over every weight, which is what those kernels exist to save. So the layout is made on the first call for
a weight array and cached by the array's identity (a weakref drops the entry when the array goes, and an
array made per call, such as a weight scaled by squeeze-excitation, is packed per call).

A cached copy must never answer for weights that changed: the source array is made read-only when it is
packed (writing into it then raises ValueError instead of leaving the copy stale), and every call also
compares a sample of 16 of its elements, spread over the whole array, with those seen at packing time, so
a change made through another view of the same memory (a writable base array) is caught as well when it
touches the sample, which loading new weights always does; it then packs afresh.

    wp = packed(weight, ("grouped", "float32", 32), lambda w: pack_weights(w, 32, np.float32))
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

import numpy as np

SAMPLES = 16

_CACHE: dict[tuple[int, Hashable], tuple[weakref.ref, np.ndarray, np.ndarray]] = {}
packs_made = 0  # layouts made so far (the tests check a layer's is made once, not per forward)


def _sample(weight: np.ndarray) -> np.ndarray:
    flat = weight.reshape(-1)
    return flat[np.linspace(0, flat.size - 1, min(SAMPLES, flat.size)).astype(np.intp)].copy()


def packed(weight: np.ndarray, key: Hashable, pack: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """pack(weight), made on the first call for this array and `key` (what else the layout depends on:
    kernel, dtype, groups) and returned from the cache afterwards while the array is unchanged."""
    global packs_made
    entry_key = (id(weight), key)
    entry = _CACHE.get(entry_key)
    if entry is not None and entry[0]() is weight:
        with np.errstate(invalid="ignore"):
            if np.array_equal(entry[2], _sample(weight), equal_nan=True):
                return entry[1]
    packs_made += 1
    result = pack(weight)
    if weight.flags.writeable and weight.size:
        weight.flags.writeable = False
    _CACHE[entry_key] = (weakref.ref(weight, lambda _gone: _CACHE.pop(entry_key, None)), result,
                         _sample(weight))
    return result


__all__ = ["SAMPLES", "packed", "packs_made"]
