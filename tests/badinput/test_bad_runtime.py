"""Run-time inputs a careless caller passes: each is a BackendError naming the input and what is wrong with
it, on every backend, before any kernel runs. Tensors that require grad are read as their values
(convc runs inference: outputs never require grad), as torch.inference_mode would."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from bad_helpers import raises_naming, tiny_net

import convc
from convc.errors import BackendError, OptionError

X = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module", params=["numpy", "torch"])
def model(request: pytest.FixtureRequest) -> Any:
    return convc.compile(tiny_net(), backend=request.param)


def reference() -> np.ndarray:
    net = tiny_net()
    w, b = (torch.from_numpy(net.graph.params[k]) for k in ("conv.weight", "conv.bias"))
    return torch.relu(torch.nn.functional.conv2d(torch.from_numpy(X), w, b, padding=1)).numpy()


BAD_INPUTS = [
    (lambda: X.astype(np.complex64), "complex"),
    (lambda: torch.from_numpy(X).to(torch.complex64), "complex"),
    (lambda: np.full(X.shape, "a"), "text"),
    (lambda: np.full(X.shape, None, dtype=object), "Python objects"),
    (lambda: X > 0, "booleans"),
    (lambda: torch.empty(X.shape, device="meta"), "meta-device"),
]


@pytest.mark.parametrize("make, culprit", BAD_INPUTS)
def test_bad_inputs_to_run_are_named(model: Any, make: Any, culprit: str) -> None:
    raises_naming(BackendError, ("input 'x'", "graph 'tiny'", culprit), lambda: model.run(make()))


@pytest.mark.parametrize("make, culprit", BAD_INPUTS)
def test_bad_inputs_to_call_are_named(model: Any, make: Any, culprit: str) -> None:
    value = make()
    if model.backend == "numpy" and isinstance(value, torch.Tensor):
        pytest.skip("the NumPy backend's native arrays are NumPy arrays")
    raises_naming(BackendError, ("input 'x'", culprit), lambda: model(value))


def test_an_input_that_requires_grad_is_read_as_its_value(model: Any) -> None:
    x = torch.from_numpy(X.copy()).requires_grad_(True)
    [got] = model.run(x)
    np.testing.assert_allclose(got, reference(), rtol=1e-5, atol=1e-6)
    if model.backend == "torch":
        out = model(x)
        assert not out.requires_grad
        np.testing.assert_allclose(out.numpy(), reference(), rtol=1e-5, atol=1e-6)


def test_a_wrong_number_of_inputs_is_named(model: Any) -> None:
    raises_naming(BackendError, ("graph 'tiny'", "1 input(s)", "got 2"), lambda: model.run(X, X))


def test_triton_run_refuses_complex_inputs_before_any_kernel() -> None:
    pytest.importorskip("triton")
    model = convc.compile(tiny_net(), backend="triton", opt_level=0)
    raises_naming(BackendError, ("input 'x'", "complex"), lambda: model.run(X.astype(np.complex128)))


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_a_seed_that_is_not_a_non_negative_int_is_named(seed: object) -> None:
    from convc.numerics_check import seeded_inputs

    raises_naming(OptionError, ("seed", repr(seed)), lambda: seeded_inputs(tiny_net().graph, seed))  # type: ignore[arg-type]
