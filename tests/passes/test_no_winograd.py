"""winograd=False (compile's pass_options, the CLI's --no-winograd): the algorithm pass never chooses
Winograd, whose tiles spread NaN/inf (docs/numerics.md), and pinning Winograd then is a named error."""
from __future__ import annotations

import pytest

import convc
from convc.cli import main
from convc.compiler import optimize
from convc.errors import OptionError

NO_WINOGRAD = {"choose_conv_algo": {"winograd": False}}


def plan_algos(**options: object) -> list[str]:
    net = convc.models.get("vgg11", batch=8, input_size=64, num_classes=10, init=False)
    _, ctx, _ = optimize(net, backend="triton", dtype="float32", opt_level=2, device="sm_90",
                         check_numerics=False, **options)  # type: ignore[arg-type]
    return [lp.algo for lp in ctx.results["plan"].layers]


def test_the_cost_model_may_pick_winograd_and_winograd_false_forbids_it() -> None:
    default, forbidden = plan_algos(), plan_algos(pass_options=NO_WINOGRAD)
    assert len(forbidden) == len(default) == 8
    assert not any(a.startswith("winograd") for a in forbidden)
    # Layers that did not use Winograd keep their choice.
    assert all(f == d for f, d in zip(forbidden, default) if not d.startswith("winograd"))


def test_pinning_winograd_while_forbidding_it_is_an_option_error() -> None:
    net = convc.models.get("vgg11", batch=1, input_size=32, num_classes=10, init=False)
    with pytest.raises(OptionError, match=r"--algo features.3=winograd_2x2 contradicts winograd=False "
                                          r"\(--no-winograd\): pin another algorithm for 'features.3'"):
        optimize(net, opt_level=2, algo={"features.3": "winograd_2x2"}, pass_options=NO_WINOGRAD,
                 check_numerics=False)
    assert main(["compile", "vgg11", "--input", "3,32,32", "--no-winograd", "--algo", "features.3=winograd_2x2"]) == 2
    assert main(["run", "vgg11", "--input", "3,32,32", "--no-winograd", "--algo", "features.3=direct"]) == 0
