"""Tensors a model holds in a layout convc's (N, C, spatial...) IR does not name, kept as a recipe on an
IR value until the model comes back to NCHW.

ConvNeXt works channels-last between two permutes; ShuffleNet views its channels as (groups, C/groups),
swaps the two and flattens them back. Neither layout reaches the IR:

    Permuted(v)                  v.permute(0, 2, 3, 1): LayerNorm over the last axis is layer_norm over
                                 v's channels, a Linear is a 1x1 conv, activations act on v
    ChannelGroups(v, g, False)   v.view(N, g, C/g, H, W); swapped=True after .transpose(1, 2), and
                                 flattening a swapped one back is channel_shuffle(v, g)

Importers treat these as run-time values; an op with no rule for them reports itself as unsupported.
"""
from __future__ import annotations

from dataclasses import dataclass

from convc.dsl import Network, Value
from convc.frontends.building import FrontendError


def channels_last_perm(rank: int) -> tuple[int, ...]:
    """(0, 2, 3, 1) for rank 4: the channels moved to the end."""
    return (0,) + tuple(range(2, rank)) + (1,)


def channels_first_perm(rank: int) -> tuple[int, ...]:
    """(0, 3, 1, 2) for rank 4: the inverse of channels_last_perm."""
    return (0, rank - 1) + tuple(range(1, rank - 1))


@dataclass(frozen=True)
class Permuted:
    """The channels-last view of the IR value `base` (logical shape (N, *spatial, C))."""

    base: Value

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.base.shape
        return (s[0],) + tuple(s[2:]) + (s[1],)

    def __repr__(self) -> str:
        return f"channels-last view of %{self.base.name} (shape {self.shape})"


@dataclass(frozen=True)
class ChannelGroups:
    """`base` (N, C, *spatial) viewed as (N, groups, C/groups, *spatial), or (N, C/groups, groups, ...)
    when `swapped`."""

    base: Value
    groups: int
    swapped: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.base.shape
        pair = (s[1] // self.groups, self.groups) if self.swapped else (self.groups, s[1] // self.groups)
        return (s[0],) + pair + tuple(s[2:])

    def __repr__(self) -> str:
        return f"channel-group view of %{self.base.name} (shape {self.shape})"


LAZY_VALUES = (Permuted, ChannelGroups)


Lazy = Value | Permuted | ChannelGroups


def permuted(v: Lazy, perm: tuple[int, ...]) -> Lazy | None:
    """`v` permuted by `perm` when the result is one convc can follow, else None."""
    rank = len(v.shape)
    perm = tuple(d % rank for d in perm)
    if perm == tuple(range(rank)):
        return v
    if isinstance(v, Value) and rank >= 3 and perm == channels_last_perm(rank):
        return Permuted(v)
    if isinstance(v, Permuted) and perm == channels_first_perm(rank):
        return v.base
    swap12 = (0, 2, 1) + tuple(range(3, rank))
    if isinstance(v, ChannelGroups) and perm == swap12:
        return ChannelGroups(v.base, v.groups, not v.swapped)
    return None


def split_channels(x: Value, target: tuple[int, ...]) -> ChannelGroups | None:
    """x (N, C, *spatial) viewed as (N, g, C / g, *spatial), or None for any other target shape."""
    s = x.shape
    if len(s) >= 3 and len(target) == len(s) + 1 and target[0] == s[0] and tuple(target[3:]) == s[2:] \
            and target[1] * target[2] == s[1]:
        return ChannelGroups(x, target[1])
    return None


def join_channels(net: Network, groups: ChannelGroups, target: tuple[int, ...], name: str) -> Value:
    """Channel groups reshaped back to (N, C, *spatial): a channel_shuffle when they were swapped."""
    base = groups.base
    if tuple(target) != base.shape:
        raise FrontendError(f"reshape of the channel groups {groups.shape} to {tuple(target)} is not "
                            f"supported; convc joins them back to {base.shape}")
    return net.channel_shuffle(base, groups.groups, name=name) if groups.swapped else base
