"""What a compiled variant is made of: matrix views of activation memory and pre-bound kernel launches.

Every activation, whatever its rank, is stored channels-last as a pixel matrix: `rows` = N * D * H * W pixels,
`cols` = C channels, `ld` = the distance between consecutive pixels (>= C; larger when the value is a channel
slice of a concat output). Kernels take a pointer plus `ld`, so writing into a slice costs nothing.

    view = View(storage, offset=64, rows=128, cols=16, ld=48)
    launch = Launch("conv1", kernel, grid=(4, 1, 1), args=(...), meta={...}, config={...})
    launch()   # kernel[grid](*args, **meta, **config)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from convc.backends.triton.common import INTERPRET, unchecked_overflow
from convc.backends.triton.tma import ensure_allocator
from convc.errors import BackendError


@dataclass
class View:
    """A [rows, cols] matrix with row stride `ld`, starting `offset` elements into a 1-D typed `storage`."""

    storage: torch.Tensor
    offset: int
    rows: int
    cols: int
    ld: int

    @property
    def ptr(self) -> torch.Tensor:
        """The tensor handed to a kernel as a pointer: the storage from `offset` on."""
        return self.storage[self.offset:]

    def as_matrix(self) -> torch.Tensor:
        """A strided torch view of the matrix (for compile-time checks, never used in forward)."""
        return self.storage.as_strided((self.rows, self.cols), (self.ld, 1), self.storage.storage_offset()
                                       + self.offset)

    def column_slice(self, start: int, width: int) -> View:
        if start < 0 or start + width > self.cols:
            raise BackendError(f"internal: columns {start}:{start + width} outside a view of {self.cols}")
        return View(self.storage, self.offset + start, self.rows, width, self.ld)


GridFn = Callable[[dict[str, Any]], tuple[int, ...]]
# Compiler options of every GPU launch and ahead-of-time compile. FMA contraction is asked for explicitly:
# Triton 3.9 warns that its unset default turns off in 3.10, and convc's numerics budgets and the
# Winograd transforms' operation counts (the cost model's) assume fused multiply-adds.
COMPILE_OPTIONS: dict[str, Any] = {"enable_fp_fusion": True}


@dataclass
class Launch:
    """One kernel launch with every argument bound; `config` holds the tunable constexprs and
    num_warps/num_stages, `meta` the fixed constexprs."""

    node: str
    kernel: Any  # a triton JITFunction
    grid_fn: GridFn
    args: tuple[Any, ...]
    meta: dict[str, Any]
    config: dict[str, Any]
    family: str | None = None  # autotune family ("conv_implicit_gemm", "gemm", "conv_direct"), or None
    out: View | None = None  # what the launch writes (for autotune's output checks)
    tune_key: tuple[Any, ...] = ()  # (M, N, K, ...): the sizes that decide which configuration is fastest
    tma: int = 0  # config["TMA"] bits the operands' alignment allows (tma.py); tuner candidates may set them
    grid: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.grid = self.grid_fn(self.config)

    @property
    def name(self) -> str:
        return getattr(self.kernel, "__name__", None) or self.kernel.fn.__name__

    def with_config(self, config: dict[str, Any]) -> Launch:
        return replace(self, config=dict(config))

    def __call__(self) -> Any:
        """Launches the kernel and returns what Triton returns: on a GPU the CompiledKernel (its `n_regs`
        and `n_spills` are the loaded cubin's; the tuner reads them), under the interpreter None."""
        if self.config.get("TMA") and not INTERPRET:  # device-side descriptors live in global scratch
            ensure_allocator()
        if INTERPRET:
            with unchecked_overflow():
                return self.kernel[self.grid](*self.args, **self.meta, **self.config)
        return self.kernel[self.grid](*self.args, **self.meta, **self.config, **COMPILE_OPTIONS)

    def describe(self) -> dict[str, Any]:
        """A JSON-able account of the launch for `module.emit`."""
        scalars = [a if isinstance(a, (int, float)) else f"<tensor {a.dtype} {tuple(a.shape)}>"
                   for a in self.args]
        return {"node": self.node, "kernel": self.name, "grid": list(self.grid), "meta": dict(self.meta),
                "config": dict(self.config), "args": scalars}
