"""Random networks for property tests, built twice from the same weights: as a convc Network and as a
torch float64 function written with torch.nn.functional (an independent construction).

    @given(t=twins())
    def test(t): ... t.net ... torch_reference(t, x)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from convc.dsl import Network, Value

Params = dict[str, torch.Tensor]
TorchFn = Callable[[torch.Tensor, Params], torch.Tensor]


@dataclass
class Twin:
    """A convc Network and the torch float64 function that computes the same thing."""

    net: Network
    y: Value
    fn: TorchFn = field(default=lambda x, p: x)
    layers: int = 0

    def then(self, y: Value, step: Callable[[torch.Tensor, Params], torch.Tensor]) -> None:
        before = self.fn
        self.fn = lambda x, p: step(before(x, p), p)
        self.y = y

    def name(self, kind: str) -> str:
        self.layers += 1
        return f"{kind}{self.layers}"


def conv_layer(draw: st.DrawFn, t: Twin) -> None:
    c, h, w = t.y.shape[1:]
    kernel, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    span = (kernel - 1) * dilation + 1
    padding = draw(st.integers(max(0, (span - min(h, w) + 1) // 2), 2))
    stride = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
    out = groups * draw(st.integers(1, 3))
    bias = draw(st.booleans())
    name = t.name("conv")
    y = t.net.conv2d(t.y, out, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     bias=bias, name=name)
    t.then(y, lambda v, p: F.conv2d(v, p[f"{name}.weight"], p.get(f"{name}.bias"), stride, padding, dilation,
                                    groups))


def pool_layer(draw: st.DrawFn, t: Twin) -> None:
    h, w = t.y.shape[2:]
    kernel = draw(st.integers(2, max(2, min(3, h, w))))
    if kernel > min(h, w):
        return
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, kernel // 2))
    if draw(st.booleans()):
        y = t.net.max_pool2d(t.y, kernel, stride=stride, padding=padding, name=t.name("pool"))
        t.then(y, lambda v, p: F.max_pool2d(v, kernel, stride, padding))
    else:
        y = t.net.avg_pool2d(t.y, kernel, stride=stride, padding=padding, name=t.name("pool"))
        t.then(y, lambda v, p: F.avg_pool2d(v, kernel, stride, padding))


ACTIVATIONS: dict[str, tuple[Callable[[Network, Value, str], Value], Callable[[torch.Tensor], torch.Tensor]]] = {
    "relu": (lambda n, v, name: n.relu(v, name=name), F.relu),
    "sigmoid": (lambda n, v, name: n.sigmoid(v, name=name), torch.sigmoid),
    "tanh": (lambda n, v, name: n.tanh(v, name=name), torch.tanh),
    "elu": (lambda n, v, name: n.elu(v, 0.7, name=name), lambda v: F.elu(v, 0.7)),
    "leaky_relu": (lambda n, v, name: n.leaky_relu(v, 0.1, name=name), lambda v: F.leaky_relu(v, 0.1)),
}


def activation_layer(draw: st.DrawFn, t: Twin) -> None:
    build, torch_fn = ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]
    t.then(build(t.net, t.y, t.name("act")), lambda v, p: torch_fn(v))


def batch_norm_layer(draw: st.DrawFn, t: Twin) -> None:
    name = t.name("bn")
    eps = draw(st.sampled_from([1e-5, 1e-3]))
    y = t.net.batch_norm(t.y, eps=eps, name=name)
    t.then(y, lambda v, p: F.batch_norm(v, p[f"{name}.running_mean"], p[f"{name}.running_var"],
                                        p[f"{name}.weight"], p[f"{name}.bias"], False, 0.0, eps))


def residual_layer(draw: st.DrawFn, t: Twin) -> None:
    """y + branch(y), the branch a 3x3 'same' conv (then fused as a residual epilogue) or an activation."""
    x, before = t.y, t.fn
    c = x.shape[1]
    if draw(st.booleans()):
        name = t.name("branch")
        branch = t.net.conv2d(x, c, 3, padding=1, name=name)

        def branch_fn(v: torch.Tensor, p: Params) -> torch.Tensor:
            return F.conv2d(v, p[f"{name}.weight"], p[f"{name}.bias"], padding=1)
    else:
        build, torch_act = ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]
        branch = build(t.net, x, t.name("branch"))

        def branch_fn(v: torch.Tensor, p: Params) -> torch.Tensor:
            return torch_act(v)
    adds = draw(st.booleans())
    t.y = t.net.add(x, branch, name=t.name("add")) if adds else t.net.concat([x, branch], name=t.name("cat"))

    def joined(v: torch.Tensor, p: Params) -> torch.Tensor:
        u = before(v, p)
        return u + branch_fn(u, p) if adds else torch.cat([u, branch_fn(u, p)], 1)
    t.fn = joined


LAYERS = (conv_layer, conv_layer, pool_layer, activation_layer, batch_norm_layer, residual_layer)


@st.composite
def twins(draw: st.DrawFn) -> Twin:
    seed = draw(st.integers(0, 2**16))
    shape = (2, draw(st.integers(1, 6)), draw(st.integers(5, 10)), draw(st.integers(5, 10)))
    net = Network(f"random{seed}", seed=seed)
    t = Twin(net, net.input(shape))
    for _ in range(draw(st.integers(1, 6))):
        draw(st.sampled_from(LAYERS))(draw, t)
    if draw(st.booleans()):  # a classifier head
        pooled = net.global_max_pool(t.y) if draw(st.booleans()) else None
        if pooled is not None:
            t.then(pooled, lambda v, p: torch.amax(v, (2, 3), keepdim=True))
        t.then(net.flatten(t.y), lambda v, p: v.flatten(1))
        out = draw(st.integers(1, 5))
        t.then(net.linear(t.y, out, name="fc"), lambda v, p: F.linear(v, p["fc.weight"], p["fc.bias"]))
        if draw(st.booleans()):
            batch_norm_layer(draw, t)
    net.output(t.y)
    net.randomize_batch_norm(seed)
    return t


def torch_reference(t: Twin, x: np.ndarray) -> np.ndarray:
    params = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in t.net.state_dict().items()}
    with torch.no_grad():
        return t.fn(torch.from_numpy(x), params).numpy()


def poison(draw: Callable[..., object], x: np.ndarray) -> np.ndarray:
    """A copy of x with 1-4 NaN / +inf / -inf at drawn positions."""
    x = x.copy()
    flat = x.reshape(-1)
    count = draw(st.integers(1, 4))
    positions = draw(st.lists(st.integers(0, flat.size - 1), min_size=count, max_size=count, unique=True))
    for i in positions:  # type: ignore[attr-defined]
        flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return x
