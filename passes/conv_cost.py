"""An analytical cost model for conv algorithms: conv node + device profile -> estimated seconds.

    profile = PROFILES["h100"]
    seconds = estimate(ConvShape.of(node, graph), "winograd_4x4", profile, "float16")

Each algorithm is a few phases (gather, GEMM, transforms); a phase costs the larger of its
multiply-adds over the device's rate and its bytes over the memory bandwidth (a roofline), plus a
fixed per-call overhead. The figures are estimates, not measurements: -O3 measures instead.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from convc.ir import Graph, Node
from convc.types import ITEMSIZE

# Bumped whenever the formulas or profiles change, so cached modelled plans are not replayed.
# 24: the compiled depthwise kernels priced in conv_cost_depthwise.py (several filters per channel:
# the stride read off the shape as the register-blocked kernel's is);
# 23: the packed narrow GEMM only for 28-64 positions;
# 22: grouped float64 at its measured rate (conv_cost_grouped.py);
# 21: NumPy float32 ungrouped im2col GEMMs of <= 64 positions run the packed-weight compiled GEMM;
# 20: grouped stride-1 layers up to 32 columns priced by their dense positions (conv_cost_grouped.py);
# 19: NumPy depthwise (one filter per channel) register-blocked, priced per vector tile;
# 18: groups of 8 or more channels run the register-blocked simd kernel, priced as it (conv_cost_grouped.py);
# 17: the compiled grouped kernel only up to 64 channels a group; 16: NumPy depthwise recalibrated
# (faster padded copies, five taps a pass); 15, 14: the compiled grouped kernel refitted (runs of 16, its
# input copy); 13: NumPy grouped 3x3 direct convs compiled by numba; 12: NumPy depthwise compiled by
# numba, grouped im2col gathers per run; 11: NumPy Winograd compiled transforms; 10: NumPy depthwise in
# 1 MiB blocks; 9: NumPy weights read from memory, two-pass Winograd transforms
# 24: the compiled depthwise kernels priced in conv_cost_depthwise.py (several filters per channel:
# the stride read off the shape as the register-blocked kernel's is);
COST_MODEL_VERSION = 24
WINOGRAD_TILE = {"winograd_2x2": 2, "winograd_4x4": 4}
# fp32 operations (an FMA counts once) of the Triton kernels' Winograd transforms, written out as adds
# (backends/triton/winograd_transforms.py): (input transform per tile and input channel, output transform
# per tile and output channel). Two 1-D passes per 2-D transform; the dense kron(B, B) product costs t^4.
WINOGRAD_TRANSFORM_OPS = {2: (32, 24), 4: (144, 100)}


@dataclass(frozen=True)
class DeviceProfile:
    """Sustained rates of one device, as convc's backend on it (NumPy on a CPU, Triton on a GPU) can
    use them for each algorithm."""

    name: str
    gemm_macs_per_s: dict[str, float]  # dense GEMM multiply-adds per second, by dtype
    direct_macs_per_s: dict[str, float]  # what a direct conv reaches, by dtype
    transform_macs_per_s: dict[str, float]  # Winograd transforms, by dtype
    bytes_per_s: float  # sustained memory bandwidth
    implicit_gemm_efficiency: float  # fraction of the GEMM rate an implicit-GEMM conv kernel reaches
    call_overhead_s: float  # per kernel launch or NumPy call
    # True where Winograd transforms run as dense GEMMs with kron(M, M) (the NumPy reference does);
    # False where a kernel applies the transform matrices as adds (WINOGRAD_TRANSFORM_OPS per tile).
    dense_transforms: bool
    # True where the backend transforms Winograd filters once, at compile time (Triton packs them).
    filters_pretransformed: bool
    # Calls a direct conv makes per kernel offset (0: one fused GPU kernel does the whole conv).
    direct_calls_per_offset: int
    # True where Winograd's t*t GEMMs write fp32 products whatever the dtype (Triton's scratch M).
    winograd_products_fp32: bool = False


def _per_dtype(fp32: float, fp64: float, half: float) -> dict[str, float]:
    return {"float32": fp32, "float64": fp64, "float16": half, "bfloat16": half}


# CPU: the NumPy backend (the torch CPU backend has no algorithm choice) on the 2-core machines CI
# uses. Two AVX2 cores peak at 2 x 16 fp32 MACs x ~2.5 GHz = 80 GMAC/s; OpenBLAS sustains about a
# quarter of that on the mid-sized GEMMs convs make (10-20 GMAC/s seen here), half in float64 (half
# the lanes); NumPy has no fast half-precision GEMM. The Winograd transforms are GEMMs with only 16 or
# 36 rows against a very wide tile matrix: they stream memory rather than compute, ~1 GMAC/s. Gathers,
# pads and adds run on one core, ~4 GB/s on a shared VM. The direct conv's per-offset GEMMs have an
# inner dimension of only C/groups (half the GEMM rate), and each offset also copies a shifted input
# slice and accumulates into the output: three NumPy calls of ~10 us overhead each.
CPU = DeviceProfile("cpu", gemm_macs_per_s=_per_dtype(20e9, 10e9, 2e9),
                    direct_macs_per_s=_per_dtype(10e9, 5e9, 1e9),
                    transform_macs_per_s=_per_dtype(1e9, 0.5e9, 0.1e9), bytes_per_s=4e9,
                    implicit_gemm_efficiency=0.5, call_overhead_s=10e-6, dense_transforms=True,
                    filters_pretransformed=False, direct_calls_per_offset=3)

# H100 SXM (REFERENCE.md): 798 TFLOP/s measured bf16 matmul (399 T MAC/s; the datasheet's 989 is not
# reached), about 3.0 TB/s measured copy bandwidth. float32 and float64 use NVIDIA's datasheet: 67
# TFLOP/s FP32 on CUDA cores (no TF32: its error would exceed convc's float32 budget) and 67 TFLOP/s
# FP64 on tensor cores. The Triton backend's direct conv and the Winograd transforms run as fp32 FMAs
# on CUDA cores (REFERENCE.md: transforms in fp32 even for fp16 GEMMs): 33.5 T MAC/s, FP64 17 T MAC/s.
# REFERENCE.md reports Triton's conv template losing to cuDNN by 1.2-1.5x: an implicit-GEMM conv is
# taken to reach 0.7 of the GEMM rate. Launch overhead ~5 us.
_H100_GEMM = _per_dtype(33.5e12, 33.5e12, 399e12)
_H100_CUDA_CORES = _per_dtype(33.5e12, 17e12, 33.5e12)
# The Triton Winograd kernels apply the transforms as fp32 adds and FMAs (WINOGRAD_TRANSFORM_OPS), one
# instruction each at the CUDA cores' FMA rate, and keep the GEMM's products in fp32 (4 bytes).
H100 = DeviceProfile("h100", gemm_macs_per_s=_H100_GEMM, direct_macs_per_s=_H100_CUDA_CORES,
                     transform_macs_per_s=_H100_CUDA_CORES, bytes_per_s=3.0e12, implicit_gemm_efficiency=0.7,
                     call_overhead_s=5e-6, dense_transforms=False, filters_pretransformed=True,
                     direct_calls_per_offset=0, winograd_products_fp32=True)
# H200: the same GH100 compute; HBM3e at 4.8 TB/s (datasheet), derated by H100's measured/datasheet
# ratio (3.0 / 3.35) to ~4.3 TB/s.
H200 = dataclasses.replace(H100, name="h200", bytes_per_s=4.3e12)

# A100 SXM (the sm_80 target): datasheet 312 TFLOP/s fp16 tensor (156 T MAC/s), 19.5 TFLOP/s fp32 and
# fp64-tensor, 2.04 TB/s; no machine measured, so derated by H100's measured/datasheet ratios (0.81 for
# the matmul rate, 0.9 for bandwidth).
_A100_CUDA_CORES = _per_dtype(9.75e12, 9.75e12, 9.75e12)
A100 = dataclasses.replace(H100, name="a100", gemm_macs_per_s=_per_dtype(9.75e12, 9.75e12, 126e12),
                           direct_macs_per_s=_A100_CUDA_CORES, transform_macs_per_s=_A100_CUDA_CORES,
                           bytes_per_s=1.8e12)

PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (CPU, H100, H200, A100)}


@dataclass(frozen=True)
class ConvShape:
    """The sizes a conv's cost depends on."""

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    unit_window: bool  # 1x1, stride 1, no padding: im2col needs no gather
    padding: tuple[tuple[int, int], ...] = ()  # (low, high) zero padding per spatial axis

    @classmethod
    def of(cls, node: Node, g: Graph) -> ConvShape:
        x = g.node(g.activation_inputs(node)[0]).type
        a = node.attrs
        unit = (all(k == 1 for k in a["kernel"]) and all(s == 1 for s in a["stride"])
                and all(p == 0 for pair in a["padding"] for p in pair))
        return cls(x.shape[0], x.shape[1], a["out_channels"], a["groups"], x.shape[2:], node.type.shape[2:],
                   tuple(a["kernel"]), unit, tuple(tuple(p) for p in a["padding"]))

    @property
    def macs(self) -> int:
        return (self.batch * self.out_channels * math.prod(self.out_spatial)
                * (self.in_channels // self.groups) * math.prod(self.kernel))

    def elements(self) -> tuple[int, int, int]:
        """(input, weight, output) element counts."""
        x = self.batch * self.in_channels * math.prod(self.in_spatial)
        w = self.out_channels * (self.in_channels // self.groups) * math.prod(self.kernel)
        y = self.batch * self.out_channels * math.prod(self.out_spatial)
        return x, w, y


def phase(macs: float, nbytes: float, rate: float, profile: DeviceProfile, calls: int = 1) -> float:
    """Roofline time of one phase: compute or memory, whichever is slower, plus call overheads."""
    return max(macs / rate, nbytes / profile.bytes_per_s) + calls * profile.call_overhead_s


def estimate(shape: ConvShape, algo: str, profile: DeviceProfile, dtype: str) -> float:
    """Modelled seconds for one conv with `algo` on `profile` in `dtype`."""
    size = ITEMSIZE[dtype]
    rate = profile.gemm_macs_per_s[dtype]
    x, w, y = shape.elements()
    if algo == "direct":
        offsets = math.prod(shape.kernel)
        calls = max(1, profile.direct_calls_per_offset * offsets)
        if profile.direct_calls_per_offset:  # NumPy: per offset, copy a shifted slice, accumulate y
            per_offset_bytes = shape.batch * shape.in_channels * math.prod(shape.out_spatial) * 2 + 2 * y
            nbytes = w + offsets * per_offset_bytes
        else:
            nbytes = x + w + y
        return phase(shape.macs, nbytes * size, profile.direct_macs_per_s[dtype], profile, calls)
    if algo == "implicit_gemm":  # the column matrix is gathered on the fly, never stored
        return phase(shape.macs * group_tile_padding(shape, profile), (x + w + y) * size,
                     rate * profile.implicit_gemm_efficiency, profile)
    if algo == "im2col":
        cols = 0 if shape.unit_window else (shape.batch * shape.in_channels * math.prod(shape.kernel)
                                            * math.prod(shape.out_spatial))
        gather = phase(0, (x + cols) * size, rate, profile) if cols else 0.0
        return gather + phase(shape.macs * group_tile_padding(shape, profile), ((cols or x) + w + y) * size,
                              rate, profile)
    if algo in WINOGRAD_TILE:
        return winograd_estimate(shape, WINOGRAD_TILE[algo], profile, dtype)
    if algo == "depthwise":
        return depthwise_estimate(shape, profile, dtype)
    # An algorithm the model does not know (a plugin backend's): assume it is as good as a GEMM.
    return phase(shape.macs, (x + w + y) * size, rate, profile)


# The narrowest output-channel tile of a GPU GEMM kernel (tl.dot needs 16 columns or more).
MIN_GEMM_TILE_COLUMNS = 16


def group_tile_padding(shape: ConvShape, profile: DeviceProfile) -> float:
    """How many MACs a GPU GEMM kernel does per useful one on a grouped conv: each group's out_channels /
    groups columns fill a tile of at least MIN_GEMM_TILE_COLUMNS (16x for a depthwise layer). 1 on the
    CPU, whose BLAS has no minimum tile."""
    per_group = shape.out_channels // shape.groups
    if profile.direct_calls_per_offset or per_group >= MIN_GEMM_TILE_COLUMNS:
        return 1.0
    return MIN_GEMM_TILE_COLUMNS / per_group


def depthwise_estimate(shape: ConvShape, profile: DeviceProfile, dtype: str) -> float:
    """A depthwise conv (backends/triton/conv_depthwise.py): one FMA per output element and tap on CUDA
    cores, reading the input, the [taps, O] weights and writing the output once (the taps re-read the
    input from cache). The GEMM algorithms pay for the empty columns of their tiles (group_tile_padding);
    on a memory-bound layer they may still tie with this, and the Triton backend lists "depthwise" first,
    which wins ties."""
    x, w, y = shape.elements()
    return phase(shape.macs, (x + w + y) * ITEMSIZE[dtype], profile.direct_macs_per_s[dtype], profile)


def transform_macs(shape: ConvShape, m: int, profile: DeviceProfile) -> tuple[int, int, int]:
    """(input, output, filter) transform multiply-adds of F(m x m, 3x3) as `profile`'s backend does them."""
    alpha = m + 2
    a2 = alpha * alpha
    tiles = shape.batch * math.ceil(shape.out_spatial[0] / m) * math.ceil(shape.out_spatial[1] / m)
    c, k = shape.in_channels, shape.out_channels
    if profile.dense_transforms:  # kron(M, M) applied to every flattened tile
        return a2 * a2 * c * tiles, a2 * m * m * k * tiles, a2 * 9 * k * c
    # The matrices' adds, one 1-D pass per tile line (filters: G g Gᵀ as two small products).
    per_in, per_out = WINOGRAD_TRANSFORM_OPS[m]
    return per_in * c * tiles, per_out * k * tiles, (3 * alpha * 3 + alpha * 3 * alpha) * k * c


def winograd_estimate(shape: ConvShape, m: int, profile: DeviceProfile, dtype: str) -> float:
    """F(m x m, 3x3): input transform, weight transform, alpha^2 GEMMs, output transform."""
    size = ITEMSIZE[dtype]
    rate = profile.gemm_macs_per_s[dtype]
    slow = profile.transform_macs_per_s[dtype]
    alpha = m + 2
    a2 = alpha * alpha
    tiles = shape.batch * math.ceil(shape.out_spatial[0] / m) * math.ceil(shape.out_spatial[1] / m)
    c, k = shape.in_channels, shape.out_channels
    x, w, y = shape.elements()
    in_macs, out_macs, w_macs = transform_macs(shape, m, profile)
    gathered, transformed_in, transformed_out = a2 * c * tiles, a2 * c * tiles, a2 * k * tiles
    filters = 0.0 if profile.filters_pretransformed else phase(w_macs, (w + a2 * k * c) * size, slow, profile)
    product_bytes = transformed_out * (4 if profile.winograd_products_fp32 else size)
    return (phase(in_macs, (x + gathered + transformed_in) * size, slow, profile) + filters
            + phase(a2 * k * c * tiles, (transformed_in + a2 * k * c) * size + product_bytes, rate, profile)
            + phase(out_macs, product_bytes + y * size, slow, profile))
