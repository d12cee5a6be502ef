"""TMA tensor descriptors: when an operand may be read through one, and the scratch memory they need.

A GEMM kernel with the `TMA` config bit set builds its tile loads on the device with
`tl.make_tensor_descriptor(base, shape, strides, block_shape)`: on sm_90 each load becomes one bulk tensor
copy (`cp.async.bulk.tensor`) into shared memory, zero-filled past the shape's edges, instead of per-thread
cp.async of a masked pointer tile; before sm_90 Triton rewrites descriptors back into pointer loads.

The copy engine's rules, which the binder checks before it lets a config set a bit (`tma_modes`):
the base address and every stride but the last are multiples of 16 bytes, the last dimension is
contiguous (stride 1), and a block's last dimension spans at least 16 bytes (every tile of the GEMM
families has 16+ elements of 2+ bytes there). A device-side descriptor is written into global scratch
memory (128 bytes per program) that Triton asks its allocator for at launch: `ensure_allocator` installs
one backed by torch's caching allocator unless the caller has set their own.

    modes = tma_modes(weights=(w, [w.shape[-1]]), activations=(a.ptr, [a.ld]))   # -> TMA_WEIGHTS | ...
    config["TMA"] = modes
"""
from __future__ import annotations

from typing import Any

import torch
import triton

TMA_WEIGHTS = 1  # config["TMA"] bit: the weight (B) tile through a descriptor
TMA_ACTIVATIONS = 2  # config["TMA"] bit: the activation (A) tile of a plain GEMM through a descriptor
TMA_ALIGN = 16  # bytes: base address and row strides of a TMA operand


def _base_offset(t: torch.Tensor) -> int:
    """The tensor's start address modulo TMA_ALIGN. On the meta device (ahead-of-time compiles) the
    storage is taken as CUDA allocates it, 256-byte aligned, so only the element offset counts."""
    if t.device.type == "meta":
        return t.storage_offset() * t.element_size() % TMA_ALIGN
    return t.data_ptr() % TMA_ALIGN


def tma_aligned(base: torch.Tensor, row_strides: list[int]) -> bool:
    """Whether a matrix starting at `base` with these row strides (elements; the last dimension is
    contiguous) meets the copy engine's alignment: base and strides multiples of 16 bytes."""
    size = base.element_size()
    return _base_offset(base) == 0 and all(s * size % TMA_ALIGN == 0 for s in row_strides)


def tma_modes(weights: tuple[torch.Tensor, list[int]] | None,
              activations: tuple[torch.Tensor, list[int]] | None = None) -> int:
    """The TMA bits a launch's operands allow: TMA_WEIGHTS when the weights are aligned, plus
    TMA_ACTIVATIONS when the activations are too (activations alone are never read by TMA: the bits
    are a ladder, so a config's choice is off, weights, or both)."""
    if weights is None or not tma_aligned(*weights):
        return 0
    if activations is not None and tma_aligned(*activations):
        return TMA_WEIGHTS | TMA_ACTIVATIONS
    return TMA_WEIGHTS


def _torch_scratch(size: int, alignment: int, stream: Any) -> torch.Tensor:
    """Global scratch for a launch's descriptors from torch's caching allocator, on the stream the kernel
    is launched on (Triton passes its handle): no cudaMalloc once the pool is warm and never a host sync.

    Why this is safe under CUDA-graph capture: Triton calls the allocator on the host at every launch,
    so inside `torch.cuda.graph(...)` the block comes from the graph's private pool (torch routes the
    capturing stream's allocations there) and its address is baked into the captured kernel node. The
    tensor dies when the launch returns; a later allocation of the same capture may reuse the block, but
    only for a kernel ordered after this one on the same stream, and the pool stays the graph's until the
    graph is freed, so a replay never writes over memory anyone else holds. Each program writes its
    descriptor before reading it, so the block's content never has to survive between launches."""
    device = torch.device("cuda", torch.cuda.current_device())
    current = torch.cuda.current_stream(device)
    if stream is not None and int(stream) != current.cuda_stream:  # a launch on another stream
        with torch.cuda.stream(torch.cuda.ExternalStream(int(stream), device=device)):
            return _aligned_block(size, alignment, device)
    return _aligned_block(size, alignment, device)


def _aligned_block(size: int, alignment: int, device: torch.device) -> torch.Tensor:
    """`size` bytes starting at a multiple of `alignment` (torch's blocks start 512-byte aligned, more
    than the 64 a descriptor needs; a larger request gets a padded block and an offset view)."""
    block = torch.empty(size + max(alignment, 1) - 1, dtype=torch.int8, device=device)
    skip = -block.data_ptr() % max(alignment, 1)
    return block[skip:skip + size]


def ensure_allocator() -> None:
    """Installs `_torch_scratch` as Triton's allocator for this thread's context unless one is set.
    Triton keeps the allocator in a ContextVar: a new thread starts without one, so every launch that
    builds descriptors calls this (one ContextVar read when it is already set). The check reads Triton
    internals (3.6-3.9); a Triton without them gets this allocator set at every such launch."""
    try:
        from triton.runtime._allocation import NullAllocator, _allocator

        if not isinstance(_allocator.get(), NullAllocator):
            return
    except (ImportError, AttributeError):
        pass
    triton.set_allocator(_torch_scratch)


def allowed_tma(config: dict[str, Any], modes: int) -> dict[str, Any]:
    """A copy of `config` whose TMA request (absent: none) is cut down to the bits `modes` allows."""
    return {**config, "TMA": int(config.get("TMA", 0)) & modes}
