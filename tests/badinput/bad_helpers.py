"""Shared pieces of the bad-input tests: small networks and an assertion that an error names its culprit."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import convc


def tiny_net(name: str = "tiny", channels: int = 4, seed: int = 0) -> convc.Network:
    """input (1, 3, 8, 8) -> conv 3x3 -> relu -> output."""
    net = convc.Network(name, seed=seed)
    x = net.input((1, 3, 8, 8))
    net.output(net.relu(net.conv2d(x, channels, 3, padding=1, name="conv")))
    return net


def raises_naming(error: type[Exception], culprits: str | tuple[str, ...], fn: Callable[[], Any]) -> str:
    """Runs `fn`, expects `error` (a ConvcError subclass) whose message contains every culprit."""
    assert issubclass(error, convc.ConvcError)
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    for culprit in (culprits,) if isinstance(culprits, str) else culprits:
        assert culprit in message, f"{culprit!r} not named in: {message}"
    assert "Traceback" not in message
    return message


def named(text: str) -> str:
    return re.escape(text)
