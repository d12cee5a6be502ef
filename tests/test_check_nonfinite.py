"""`convc check` probes NaN/inf handling: a NaN, +inf and -inf in the input, outputs compared with the float64
reference's positions; Winograd's spread within a tile is reported as such, a number for a NaN fails."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convc.cli import main
from convc.nonfinite import EXACT, SPREADS, check_spread, classify, poisoned, verdict


def conv_factory(tmp_path: Path) -> str:
    path = tmp_path / "one_conv.py"
    path.write_text("import torch\nfrom torch import nn\n\n\ndef make():\n    torch.manual_seed(0)\n"
                    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))\n")
    return f"{path}:make"


@pytest.mark.parametrize("algo,expected", [("direct", EXACT), ("im2col", EXACT),
                                           ("winograd_4x4", f"{SPREADS} (winograd_4x4)")])
def test_check_reports_nonfinite_handling_per_algorithm(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        algo: str, expected: str) -> None:
    code = main(["check", conv_factory(tmp_path), "--input", "3,12,12", "--backends", "numpy",
                 "--algo", f"0={algo}", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert code == 0, out
    row = " ".join(line for line in out.splitlines() if line.startswith("numpy"))
    assert " ".join(row.split()).startswith("numpy "), out
    assert expected in " ".join(row.split()) and row.rstrip().endswith("ok"), out


def test_verdict_fails_a_number_where_the_reference_has_nan_and_spread_without_winograd() -> None:
    ref = np.array([[np.nan, 1.0, np.inf, 2.0]])
    assert verdict([ref.copy()], [ref], []) == (EXACT, True)
    lost = np.array([[0.0, 1.0, np.inf, 2.0]])
    text, ok = verdict([lost], [ref], ["winograd_4x4"])
    assert not ok and text.startswith("wrong: 0 at (0, 0) where the reference has NaN")
    spread = np.array([[np.nan, np.nan, np.nan, 2.0]])
    assert verdict([spread], [ref], ["im2col"]) == (f"{SPREADS}, without Winograd", False)
    assert verdict([spread], [ref], ["im2col", "winograd_2x2"]) == (f"{SPREADS} (winograd_2x2)", True)
    assert classify(spread, ref) == SPREADS


def test_check_spread_confines_nonfinite_values_to_poisoned_tiles() -> None:
    ref = np.zeros((1, 1, 4, 4))
    ref[0, 0, 1, 1] = np.nan
    inside = ref.copy()
    inside[0, 0, :2, :2] = np.nan  # the whole 2x2 tile holding the reference's NaN
    assert check_spread(inside, ref, 2) is None
    outside = inside.copy()
    outside[0, 0, 2, 2] = np.inf
    assert "outside any poisoned 2x2 tile: +inf at (0, 0, 2, 2)" in str(check_spread(outside, ref, 2))
    assert "became a number" in str(check_spread(np.zeros_like(ref), ref, 2))


def test_poisoned_puts_one_nan_and_two_infinities_in_each_input() -> None:
    (x,) = poisoned([np.zeros((2, 3, 5, 5))], seed=4)
    assert np.isnan(x).sum() == 1 and np.isposinf(x).sum() == 1 and np.isneginf(x).sum() == 1
