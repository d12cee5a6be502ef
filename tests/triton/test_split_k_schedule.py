"""split_k.split_k_factor: the split of a layer under one wave, by hand and against a brute-force search
over every split (no kernel runs: the schedule is arithmetic)."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convc.backends.triton import split_k


@pytest.fixture(autouse=True)
def enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split_k, "ENABLED", True)  # off under the interpreter


def tile(bm: int, bn: int, bk: int, warps: int = 4, stages: int = 4) -> dict[str, int]:
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": warps, "num_stages": stages}


T128 = tile(128, 128, 64, stages=3)  # 2 CTAs per SM (fp16): a wave of 264
T64 = tile(64, 64, 64)  # 3 CTAs per SM: a wave of 396


def test_the_split_stays_within_one_wave() -> None:
    """100 tiles of 128x128 (2 CTAs per SM: a wave of 264) with 72 K steps: 2 splits, 200 CTAs of 36 steps.
    3 splits (the first past a wave) would launch 300 CTAs, 36 in a second wave: 2 x 24 = 48 steps."""
    assert split_k.split_k_factor(100, 72, T128, "float16") == 2
    # ResNet-50 layer3 3x3 at batch 1: 16 tiles of 64x64 (a wave of 396), 36 steps: 9 splits of 4 steps.
    assert split_k.split_k_factor(16, 36, T64, "float16") == 9
    # layer4: 8 tiles, 72 steps: at most 16 splits, 5 steps each; 15 splits also take 5 steps, one plane less.
    assert split_k.split_k_factor(8, 72, T64, "float16") == 15
    assert split_k.split_k_factor(264, 72, T128, "float16") == 1  # a full wave already


def test_the_wave_counts_the_compiled_kernels_ctas() -> None:
    """A 16x16 fp16 tile's split variant fits 12 CTAs per SM on sm_90 (the coarse area bound said 4): 600
    such tiles are under a wave of 1,584 and split 2 ways; a 5-stage 64x64x32 tile fits 5 (3 where the
    channels leave the last K block ragged); the fp32 tiles have their own counts, the fewest over triton
    3.6, 3.8 and 3.9."""
    small = tile(16, 16, 16, stages=2)
    assert split_k.resident_ctas(small, "float16") == 12 and split_k.resident_ctas(small, "bfloat16") == 12
    assert split_k.split_k_factor(600, 40, small, "float16") == 2
    assert split_k.resident_ctas(tile(64, 64, 32, stages=5), "float16") == 5
    assert split_k.resident_ctas(tile(64, 64, 32, stages=5), "float16", ragged=True) == 3
    assert split_k.resident_ctas(tile(64, 64, 32, stages=3), "float32") == 4  # 5 under triton 3.6 and 3.8
    unlisted = tile(32, 16, 16, stages=2)  # in no candidate list: the area bound
    assert split_k.resident_ctas(unlisted, "float16") == 4


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(tiles=st.integers(1, 2500), k_steps=st.integers(1, 400),
       config=st.sampled_from([tile(16, 16, 16, stages=2), tile(32, 64, 32, stages=3), T64,
                               tile(128, 64, 64), T128, tile(64, 64, 32, stages=5)]),
       dtype=st.sampled_from(["float16", "float32"]), ragged=st.booleans())
def test_the_split_is_the_shortest_within_one_wave(tiles: int, k_steps: int, config: dict[str, int],
                                                   dtype: str, ragged: bool) -> None:
    """Among splits that fit one wave (SMS x resident CTAs), keep MIN_STEPS_PER_SPLIT steps and at most
    MAX_SPLIT_K: the fewest K steps per program, then the fewest splits."""
    wave = split_k.SMS * split_k.resident_ctas(config, dtype, ragged=ragged)
    allowed = [s for s in range(1, split_k.MAX_SPLIT_K + 1)
               if s == 1 or (tiles * s <= wave and k_steps // s >= split_k.MIN_STEPS_PER_SPLIT)]
    expected = 1 if tiles >= wave else min(allowed, key=lambda s: (math.ceil(k_steps / s), s))
    split = split_k.split_k_factor(tiles, k_steps, config, dtype, ragged=ragged)
    assert split == expected
    assert split == 1 or tiles * split <= wave
