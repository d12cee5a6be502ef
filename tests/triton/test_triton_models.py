"""Zoo models other than VGG and ResNet through the default pipeline on the Triton backend (see
zoo_cases.py); test_triton_zoo_vgg.py and test_triton_zoo_resnet.py hold the rest, so that each file is a
similar share of the work for `pytest --dist loadfile`. Full-size models run in tests/gpu/."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from triton_check import random_inputs, reference, set_algo
from zoo_cases import ZOO_OPTIONS, cases, check_zoo_model

import convc
import convc.models
from convc.dsl import Network
from convc.numerics import budget, rel_err

OTHERS = [name for name in convc.models.names() if not name.startswith(("vgg", "resnet"))]


def test_every_zoo_model_has_a_small_configuration() -> None:
    assert set(ZOO_OPTIONS) == set(convc.models.names())
    assert len(ZOO_OPTIONS) >= 21


@pytest.mark.parametrize(("name", "dtype"), cases(OTHERS))
def test_zoo_model(name: str, dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    check_zoo_model(name, dtype)


def test_numerics_check_runs_on_graphs_with_triton_only_algorithms() -> None:
    """check_numerics=True traces every rewritten graph on the NumPy backend, which has no implicit_gemm:
    the checker must read such convs as its default algorithm rather than fail."""
    net = Network("checked", seed=3)
    x = net.input((2, 8, 6, 6))
    y = net.relu(net.batch_norm(net.conv2d(x, 16, 3, padding=1)))
    set_algo(net, y := net.conv2d(y, 16, 3, padding=1), "implicit_gemm")
    net.output(net.relu(net.add(y, net.conv2d(x, 16, 1))))
    model: Any = convc.compile(net, backend="triton", device="cpu", check_numerics=True)
    checked = [r for r in model.pass_records if r.changed]
    assert {"fold_bn", "fuse_epilogue"} <= {r.name for r in checked}
    assert all(r.error is not None and r.error <= budget("float32", whole_model=True) for r in checked)
    xs = random_inputs(net)
    [out] = model.run(*xs)
    assert rel_err(out, reference(net, *xs)[0]) <= budget("float32", whole_model=True)
