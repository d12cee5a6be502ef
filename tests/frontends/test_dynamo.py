"""torch.compile(model, backend="convc"): supported subgraphs run on convc, the rest in eager (warned)."""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from frontend_helpers import randomize_batch_norm
from test_torch_import import Conv2dNet
from torch import nn

from convc.frontends import dynamo
from convc.numerics import budget, rel_err


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def convc_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the runs of convc subgraphs, proving the compiled model did not just run eager torch."""
    calls: list[int] = []
    original = dynamo.ConvcSubgraph.forward

    def counted(self: dynamo.ConvcSubgraph, *args: torch.Tensor) -> object:
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(dynamo.ConvcSubgraph, "forward", counted)
    return calls


def convc_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if str(w.message).startswith("convc:")]


def close(actual: torch.Tensor, expected: torch.Tensor, dtype: str = "float32") -> bool:
    return rel_err(actual.detach().numpy(), expected.detach().numpy()) < budget(dtype, whole_model=True)


def test_a_supported_model_runs_on_convc_without_fallback(convc_calls: list[int]) -> None:
    model = Conv2dNet().eval()
    randomize_batch_norm(model)
    x = torch.randn(2, 3, 15, 13)
    compiled = torch.compile(model, backend="convc")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = compiled(x)
    assert convc_warnings(caught) == []
    assert len(convc_calls) == 1  # one partition: the whole graph
    assert close(y, model(x))
    assert close(compiled(x + 1), model(x + 1))  # the second call reuses the compiled subgraph


class WithMish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.mish(torch.relu(self.conv1(x)))
        return F.max_pool2d(self.conv2(y), 2)


def test_an_unsupported_op_falls_back_to_eager_with_a_warning(convc_calls: list[int]) -> None:
    model = WithMish().eval()
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match=r"convc: 1 op\(s\) run in eager PyTorch:\n  function "
                                         r"torch.nn.functional.mish \(node '\w+'\): not supported"):
        y = torch.compile(model, backend="convc")(x)
    assert len(convc_calls) == 2  # conv1 + relu before mish, conv2 + pool after it
    assert close(y, model(x))


def test_options_choose_the_dtype_and_weight_updates_are_seen() -> None:
    model = WithMish().eval()
    x = torch.randn(1, 3, 8, 8)
    compiled = torch.compile(model, backend="convc", options={"backend": "numpy", "dtype": "float64"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert close(compiled(x), model(x))
        with torch.no_grad():
            model.conv2.weight.mul_(-2.0)  # in place: the parameter's version counter moves
        y = compiled(x)
    assert y.dtype == torch.float32
    assert close(y, model(x))


class FlattenByView(nn.Module):
    """x.view(x.size(0), -1): with a symbolic batch dynamo records the size as a graph value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return torch.softmax(self.fc(y.view(y.size(0), -1)), dim=1)


@pytest.mark.parametrize("dynamic", [None, True])
def test_new_batch_sizes_reuse_the_compiled_module_on_convc(dynamic: bool | None,
                                                            convc_calls: list[int]) -> None:
    model = FlattenByView().double().eval()
    compiled = torch.compile(model, backend="convc", dynamic=dynamic)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, batch in enumerate((2, 3, 5, 3)):
            x = torch.randn(batch, 3, 8, 8, dtype=torch.float64)
            y = compiled(x)
            assert len(convc_calls) == i + 1  # every batch size ran on convc, none in eager torch
            want = model(x).detach().numpy()
            assert rel_err(y.detach().numpy(), want) <= budget("float64", whole_model=True)
    assert convc_warnings(caught) == []


@pytest.mark.parametrize("source, key", [
    ("L['self']._modules['conv']._parameters['weight']", "conv.weight"),
    ("L['self'].layer1._modules['0']._buffers['running_mean']", "layer1.0.running_mean"),
    ("L['self'].features[3]", "features.3"),
])
def test_dynamo_sources_become_state_dict_keys(source: str, key: str) -> None:
    assert dynamo.clean_path(source) == key


def test_a_subgraph_convc_cannot_compile_runs_in_eager_with_a_warning() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    x = torch.randn(1, 3, 6, 6)
    compiled = torch.compile(model, backend="convc", options={"backend": "no_such_backend"})
    with pytest.warns(UserWarning, match="convc could not compile it: unknown backend 'no_such_backend'"):
        y = compiled(x)
    np.testing.assert_allclose(y.detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
