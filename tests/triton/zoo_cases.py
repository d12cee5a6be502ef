"""Every zoo model at a reduced size through convc.compile's default pipeline (-O2: BN folding, epilogue
fusion, algorithm choice) on the Triton backend under the CPU interpreter, against the unoptimised graph on
the NumPy backend in float64 within the whole-model budget. The cases are split over three test files
(VGG, ResNet, the rest) so `pytest -n 2 --dist loadfile` can run them on both workers.

    check_zoo_model("resnet18", "float16")
"""
from __future__ import annotations

from typing import Any

from triton_check import random_inputs

import convc
import convc.models
from convc.numerics import budget, rel_err

# The smallest inputs each architecture accepts (or close to it) and 10 classes; batch 2, so the batch
# index of every kernel is exercised. Widths are the published ones except C3D's (width=0.125 gives 8-64
# channels): these nets cost mostly their weights, which the interpreter streams at ~60 ns an element.
ZOO_OPTIONS: dict[str, dict[str, Any]] = {
    "lenet5": dict(batch=2),
    "alexnet": dict(input_size=67, num_classes=10, batch=2),
    "zfnet": dict(input_size=64, num_classes=10, batch=2),
    "nin": dict(input_size=67, num_classes=10, batch=2),
    "googlenet": dict(input_size=48, num_classes=10, batch=2),
    "alphago_policy": dict(k=16, input_size=9, batch=2),
    "text_cnn": dict(input_size=12, embedding=16, maps=8, batch=2),
    "c3d": dict(width=0.125, input_size=(16, 16, 16), num_classes=10, batch=2),
}
for _name in convc.models.names():
    if _name.startswith(("vgg", "resnet")):
        ZOO_OPTIONS[_name] = dict(input_size=32, num_classes=10, batch=2)

# A few models in half precision as well (the rest of the zoo shares their kernels).
HALF_PRECISION = {
    "float16": ("lenet5", "googlenet", "alphago_policy", "text_cnn", "c3d", "resnet18", "vgg11_bn"),
    "bfloat16": ("resnet18",),
}


def cases(names: list[str]) -> list[tuple[str, str]]:
    """(model, dtype) pairs: every model in float32, the HALF_PRECISION ones in their dtypes too."""
    out = [(name, "float32") for name in names]
    out += [(name, dtype) for dtype, models in HALF_PRECISION.items() for name in models if name in names]
    return out


def check_zoo_model(name: str, dtype: str) -> float:
    """Compiles with the default pipeline, runs, and asserts every output is within the whole-model
    budget of the unoptimised graph run by the NumPy backend in float64; returns the largest error."""
    net = convc.models.get(name, **ZOO_OPTIONS[name])
    model: Any = convc.compile(net, backend="triton", dtype=dtype, device="cpu")
    assert any(r.changed for r in model.pass_records), "the default pipeline should rewrite every zoo model"
    xs = random_inputs(net)
    outs = model.run(*xs)
    refs = convc.compile(net, backend="numpy", dtype="float64", opt_level=0).run(*xs)
    worst = 0.0
    for out, ref in zip(outs, refs, strict=True):
        err = rel_err(out, ref)
        assert err <= budget(dtype, whole_model=True), f"{name} {dtype}: rel_err {err:.3g}"
        worst = max(worst, err)
    return worst
