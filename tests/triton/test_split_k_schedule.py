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


def test_the_split_stays_within_one_wave() -> None:
    """100 tiles of 128x128 (2 CTAs per SM: a wave of 264) with 72 K steps: 2 splits, 200 CTAs of 36 steps.
    3 splits (the first past a wave) would launch 300 CTAs, 36 in a second wave: 2 x 24 = 48 steps."""
    assert split_k.split_k_factor(100, 72, 128 * 128) == 2
    # ResNet-50 layer3 3x3 at batch 1: 16 tiles of 64x64 (a wave of 396), 36 steps: 9 splits of 4 steps.
    assert split_k.split_k_factor(16, 36, 64 * 64) == 9
    # layer4: 8 tiles, 72 steps: at most 16 splits, 5 steps each; 15 splits also take 5 steps, one plane less.
    assert split_k.split_k_factor(8, 72, 64 * 64) == 15
    assert split_k.split_k_factor(264, 72, 128 * 128) == 1  # a full wave already


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(tiles=st.integers(1, 1200), k_steps=st.integers(1, 400),
       tile_elements=st.sampled_from([16 * 16, 32 * 64, 64 * 64, 128 * 64, 128 * 128]))
def test_the_split_is_the_shortest_within_one_wave(tiles: int, k_steps: int, tile_elements: int) -> None:
    """Among splits that fit one wave (SMS x resident CTAs), keep MIN_STEPS_PER_SPLIT steps and at most
    MAX_SPLIT_K: the fewest K steps per program, then the fewest splits."""
    wave = split_k.SMS * split_k.resident_ctas(tile_elements)
    allowed = [s for s in range(1, split_k.MAX_SPLIT_K + 1)
               if s == 1 or (tiles * s <= wave and k_steps // s >= split_k.MIN_STEPS_PER_SPLIT)]
    expected = 1 if tiles >= wave else min(allowed, key=lambda s: (math.ceil(k_steps / s), s))
    split = split_k.split_k_factor(tiles, k_steps, tile_elements)
    assert split == expected
    assert split == 1 or tiles * split <= wave
