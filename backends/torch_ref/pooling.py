"""Max and average pooling (1D/2D/3D) and the global pools, as torch.nn.functional calls.

Pool padding is symmetric (one int per axis). Global pools keep every spatial axis as size 1.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from convc.backend import LoweringKey
from convc.interpreter import Kernel
from convc.ir import Node


REDUCED_PRECISION = (torch.float16, torch.bfloat16)
MAX_POOLS: dict[int, Callable[..., torch.Tensor]] = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOLS: dict[int, Callable[..., torch.Tensor]] = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def needs_float32_on_cpu(x: torch.Tensor) -> bool:
    """PyTorch's CPU avg_pool3d (which local_response_norm also uses) has no float16/bfloat16 kernel;
    such inputs are pooled in float32 and rounded back, which is at least as accurate."""
    return x.device.type == "cpu" and x.dtype in REDUCED_PRECISION


def max_pool(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    a = node.attrs
    pool = MAX_POOLS[len(a["kernel"])]
    return pool(args[0], a["kernel"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"])


def avg_pool(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    a = node.attrs
    x = args[0]
    nd = len(a["kernel"])
    upcast = nd == 3 and needs_float32_on_cpu(x)
    y = AVG_POOLS[nd](x.float() if upcast else x, a["kernel"], a["stride"], a["padding"],
                      ceil_mode=a["ceil_mode"], count_include_pad=a["count_include_pad"])
    return y.to(x.dtype) if upcast else y


def spatial_dims(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.dim()))


def global_avg_pool(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0].mean(dim=spatial_dims(args[0]), keepdim=True)


def global_max_pool(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0].amax(dim=spatial_dims(args[0]), keepdim=True)


ADAPTIVE_AVG_POOLS: dict[int, Callable[..., torch.Tensor]] = {
    1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d,
}


def adaptive_avg_pool(node: Node, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    size = node.attrs["output_size"]
    upcast = len(size) == 3 and needs_float32_on_cpu(x)
    y = ADAPTIVE_AVG_POOLS[len(size)](x.float() if upcast else x, size)
    return y.to(x.dtype) if upcast else y


KERNELS: dict[LoweringKey, Kernel] = {
    **{(f"max_pool{nd}d", None): max_pool for nd in (1, 2, 3)},
    **{(f"avg_pool{nd}d", None): avg_pool for nd in (1, 2, 3)},
    ("global_avg_pool", None): global_avg_pool,
    ("global_max_pool", None): global_max_pool,
    ("adaptive_avg_pool", None): adaptive_avg_pool,
}
