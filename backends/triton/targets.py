"""GPU targets a model can be compiled for ahead of time, and how many CTAs of a kernel fit on one SM.

The limits are NVIDIA's per-multiprocessor figures (CUDA programming guide, compute capabilities table):
registers are allocated per warp in units of 256 (8 per thread), shared memory reserves 1 KB per CTA.

    target = GPU_TARGETS["sm_90"]
    target.ctas_per_sm(registers=168, warps=4, shared_bytes=65536)   # -> 3 (shared memory bound)
    target.waves(ctas=1024, ctas_per_sm=3)                           # -> 2.59 (of 132 SMs x 3 CTAs)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from convc.errors import OptionError

REGISTER_UNIT = 256  # registers a warp is given at a time
CTA_RESERVED_SHARED = 1024  # bytes of shared memory the system keeps per resident CTA (sm_80 and later)


@dataclass(frozen=True)
class GpuTarget:
    """One compute capability with the SM count of the part convc targets with it."""

    name: str  # "sm_90"
    arch: int  # 90
    part: str  # the GPU whose SM count `sms` is
    sms: int
    registers_per_sm: int
    shared_per_sm: int  # bytes usable by CTAs, all of them together
    shared_per_cta: int  # the largest a single CTA may ask for
    max_warps_per_sm: int
    max_ctas_per_sm: int
    cost_profile: str  # the name of the cost-model profile (passes/conv_cost.py) the plan uses

    def ctas_per_sm(self, registers: int, warps: int, shared_bytes: int) -> int:
        """Resident CTAs of a kernel on one SM: the tightest of registers, shared memory, warps and the
        CTA cap; 0 when one CTA does not fit at all."""
        if shared_bytes > self.shared_per_cta or warps > self.max_warps_per_sm:
            return 0
        per_warp = math.ceil(max(registers, 1) * 32 / REGISTER_UNIT) * REGISTER_UNIT
        by_registers = self.registers_per_sm // (per_warp * warps)
        by_shared = self.shared_per_sm // (shared_bytes + CTA_RESERVED_SHARED)
        return min(by_registers, by_shared, self.max_warps_per_sm // warps, self.max_ctas_per_sm)

    def waves(self, ctas: int, ctas_per_sm: int) -> float:
        """How many times the grid fills every SM (a grid of 0.5 leaves half the machine idle)."""
        return ctas / (self.sms * ctas_per_sm) if ctas_per_sm else math.inf


GPU_TARGETS: dict[str, GpuTarget] = {
    "sm_90": GpuTarget("sm_90", 90, "H100 SXM / H200", 132, 65536, 228 * 1024, 227 * 1024, 64, 32, "h100"),
    "sm_80": GpuTarget("sm_80", 80, "A100", 108, 65536, 164 * 1024, 163 * 1024, 64, 32, "a100"),
}


def gpu_target(name: str) -> GpuTarget:
    """The target named `name` ("sm_90", "sm90", "90" all work); an OptionError lists the known ones."""
    key = name.lower().replace("sm", "").strip("_")
    found = GPU_TARGETS.get(f"sm_{key}")
    if found is None:
        raise OptionError(f"--target {name!r}: unknown GPU target; choose one of {', '.join(GPU_TARGETS)}")
    return found


def local_target() -> GpuTarget | None:
    """The target of the local CUDA GPU, or None without one (or for a GPU of another generation)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability()
    except Exception:
        return None
    return GPU_TARGETS.get(f"sm_{major}{minor}")
