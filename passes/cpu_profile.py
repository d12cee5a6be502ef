"""The NumPy backend's measured CPU profile: what this machine's BLAS and memory actually deliver.

    profile = numpy_profile("float32")           # measured once per machine, then read from the cache
    profile.gemm_rate(49)                        # MAC/s of a GEMM whose smallest dimension is 49
    profile = numpy_profile("float32", calibrate=False)   # the shipped constants (SHIPPED)

A profile is a few seconds of measurement (GEMMs per shape class, the copies the kernels make, the
Winograd transform GEMMs) taken the first time a compile needs it, then cached in
$CONVC_CACHE_DIR/profiles/ (default ~/.cache/convc), keyed by CPU model, BLAS thread count, NumPy and
BLAS versions and dtype. A cache file that is corrupt or made for another key is refused and measured
again. CONVC_CALIBRATE=0 (or the pass option calibrate=False) uses the shipped constants instead, as
tests that need determinism do.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convc.device_profiles import blas_threads, blas_version, compiled_cpu_kernels, cpu_name
from convc.registry import get_backend
from convc.serialize import atomic_write

from convc.passes.plan import cache_dir

PROFILE_FORMAT = "convc-cpu-profile"
PROFILE_VERSION = 3  # 3: compiled Winograd transforms; 2: transforms as two 1-D passes, weight streaming
GEMM_CLASSES = (2, 4, 8, 16, 32, 64, 128, 256)  # the smallest GEMM dimension each class is measured at
WINOGRAD_TILES = (2, 4)


@dataclass(frozen=True)
class NumpyProfile:
    """Rates of the operations the NumPy backend's conv kernels are made of, for one dtype.

    `gemm_rates` pairs a GEMM's smallest dimension with the multiply-adds per second measured for it
    (BLAS loses efficiency as any dimension shrinks); between the points the rate is interpolated in
    log-log. `transform_s_per_column` is the seconds one Winograd transform GEMM spends per column
    (one channel of one tile), keyed "in2", "out2", "in4", "out4"; where the backend runs its compiled
    transforms (numba, backends/numpy_ref/conv_winograd_jit.py) also "compiled_in2", ..., the seconds
    those one-pass kernels spend per column, and "compiled_in2_plane", ..., per channel of an image
    (their per-row loop overhead, which dominates on 7x7 maps)."""

    dtype: str
    source: str
    gemm_rates: tuple[tuple[int, float], ...]
    transform_s_per_column: dict[str, float]
    copy_bytes_per_s: float  # contiguous copies and elementwise passes (np.pad, +=), bytes read + written
    gather_bytes_per_s: float  # the im2col window gather (strided reads, contiguous writes)
    tile_gather_bytes_per_s: float  # Winograd's overlapping-tile gather
    scatter_bytes_per_s: float  # Winograd's output tiles permuted back to NCHW
    call_overhead_s: float  # one NumPy call
    slice_overhead_s: float  # each matrix of a stacked np.matmul
    # GEMM weights read from memory (a forward reads each layer's once, cold); inf: free, as in tests
    weight_bytes_per_s: float = math.inf

    def gemm_rate(self, smallest_dim: int) -> float:
        """MAC/s for a GEMM whose smallest dimension is `smallest_dim` (clamped to the measured range)."""
        points = self.gemm_rates
        d = max(1, smallest_dim)
        if d <= points[0][0]:
            return points[0][1]
        for (d0, r0), (d1, r1) in zip(points, points[1:]):
            if d <= d1:
                f = math.log(d / d0) / math.log(d1 / d0)
                return math.exp(math.log(r0) + f * (math.log(r1) - math.log(r0)))
        return points[-1][1]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "gemm_rates": [list(p) for p in self.gemm_rates]}

    def fingerprint(self) -> str:
        """A short digest of the numbers: plans modelled with another profile are not replayed."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumpyProfile:
        """Raises ValueError when `d` is not a well-formed profile (positive finite rates)."""
        try:
            profile = cls(str(d["dtype"]), str(d["source"]),
                          tuple((int(a), float(r)) for a, r in d["gemm_rates"]),
                          {str(k): float(v) for k, v in d["transform_s_per_column"].items()},
                          *(float(d[f.name]) for f in dataclasses.fields(cls)[4:]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed profile: {e}") from None
        numbers = ([r for _, r in profile.gemm_rates] + list(profile.transform_s_per_column.values())
                   + [getattr(profile, f.name) for f in dataclasses.fields(cls)[4:]])
        if not profile.gemm_rates or not all(math.isfinite(x) and x > 0 for x in numbers):
            raise ValueError("a rate is missing, zero, negative or not finite")
        keys = set(profile.transform_s_per_column)
        if {f"{io}{t}" for io in ("in", "out") for t in WINOGRAD_TILES} - keys:
            raise ValueError("a Winograd transform rate is missing")
        compiled = {f"compiled_{io}{t}{part}" for io in ("in", "out") for t in WINOGRAD_TILES
                    for part in ("", "_plane")}
        if keys & compiled and compiled - keys:
            raise ValueError("a compiled Winograd transform rate is missing")
        return profile


# Fallback: measured with `calibrate()` on the project's 2-core "AMD EPYC" CI VM (OpenBLAS 0.3.31, one
# BLAS thread, numpy 2.4, numba 0.68 for the compiled transforms; 2026-12-01), rounded; the 2-wide
# class is set below the 4-wide one (its measurement is a matrix-vector product in cache). float64
# halves the SIMD lanes: half the GEMM rate, twice the transform time. Without numba (CONVC_NUMBA=0)
# `numpy_profile` drops the "compiled_*" keys, so the model prices the NumPy transforms.
_SHIPPED_GEMM_F32 = ((2, 8e9), (4, 17e9), (8, 25e9), (16, 40e9), (32, 45e9), (64, 50e9),
                     (128, 51e9), (256, 52e9))
SHIPPED: dict[str, NumpyProfile] = {
    "float32": NumpyProfile("float32", "shipped constants", _SHIPPED_GEMM_F32,
                            {"in2": 4.2e-9, "out2": 3.5e-9, "in4": 21e-9, "out4": 12e-9,
                             "compiled_in2": 10e-9, "compiled_in2_plane": 0.29e-6, "compiled_out2": 8e-9,
                             "compiled_out2_plane": 0.11e-6, "compiled_in4": 19e-9,
                             "compiled_in4_plane": 0.42e-6, "compiled_out4": 16e-9,
                             "compiled_out4_plane": 0.15e-6},
                            copy_bytes_per_s=26e9, gather_bytes_per_s=54e9, tile_gather_bytes_per_s=16e9,
                            scatter_bytes_per_s=19e9, call_overhead_s=0.9e-6, slice_overhead_s=6e-8,
                            weight_bytes_per_s=12e9),
}
SHIPPED["float64"] = dataclasses.replace(
    SHIPPED["float32"], dtype="float64", gemm_rates=tuple((d, r / 2) for d, r in _SHIPPED_GEMM_F32),
    transform_s_per_column={k: 2 * v for k, v in SHIPPED["float32"].transform_s_per_column.items()})


# ---------------------------------------------------------------------------- measuring
def seconds_per_call(fn: Callable[[], object], target_s: float = 1e-3, samples: int = 7) -> float:
    """Seconds of one `fn()` call: the fastest of `samples` samples, each batching calls to last about
    `target_s`. The fastest, not the median: on a shared machine the median measures the neighbours."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, min(1000, int(target_s / once)))
    timings = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        timings.append((time.perf_counter() - t0) / inner)
    return min(timings)


def _kron(m: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.ascontiguousarray(np.kron(m, m), dtype=dtype)


def compiled_transforms() -> Any:
    """The NumPy backend's probes of its compiled Winograd transforms (Backend.probes:
    "winograd_input" / "winograd_output", each probe(dtype, tile, channels, size) -> a call to time)
    where they run (numba installed and CONVC_NUMBA not 0), else None. Reached through the backend
    registry, as passes reach backends, never by import."""
    if not compiled_cpu_kernels():
        return None
    probes = getattr(get_backend("numpy"), "probes", {})
    return probes if {"winograd_input", "winograd_output"} <= set(probes) else None


# The two maps the compiled transforms are timed on, (channels, size): per-column cost from the large
# map, per-channel overhead from the small one, solved from both.
COMPILED_PROBES = ((64, 56), (512, 7))


def calibrate_compiled(dtype: str, timer: Callable[[Callable[[], object]], float]) -> dict[str, float]:
    """Seconds per column and per channel plane of the compiled Winograd transforms, or {} where they do
    not run. Each kernel is timed on the two COMPILED_PROBES maps and the two unknowns solved for."""
    probes = compiled_transforms()
    if probes is None:
        return {}
    rates: dict[str, float] = {}
    for t in WINOGRAD_TILES:
        samples: dict[str, list[tuple[int, int, float]]] = {"in": [], "out": []}
        for c, size in COMPILED_PROBES:
            columns = c * math.ceil(size / t) ** 2
            samples["in"].append((columns, c, timer(probes["winograd_input"](dtype, t, c, size))))
            samples["out"].append((columns, c, timer(probes["winograd_output"](dtype, t, c, size))))
        for side, ((cols1, planes1, s1), (cols2, planes2, s2)) in samples.items():
            per_column, per_plane = np.linalg.solve([[cols1, planes1], [cols2, planes2]], [s1, s2])
            rates[f"compiled_{side}{t}"] = max(float(per_column), 1e-12)
            rates[f"compiled_{side}{t}_plane"] = max(float(per_plane), 1e-12)
    return rates


def calibrate(dtype: str, timer: Callable[[Callable[[], object]], float] = seconds_per_call) -> NumpyProfile:
    """Measures this machine (about a second per dtype): GEMMs per shape class, the kernels' copies,
    the Winograd transform GEMMs. `timer(fn)` returns seconds per call (tests pass a fake one)."""
    dt = np.dtype(dtype)
    size = dt.itemsize
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dt)

    big = 512  # the other two dimensions of each GEMM class
    gemm = []
    for d in GEMM_CLASSES:
        a, b = arr(big, big), arr(big, d)
        gemm.append((d, big * big * d / timer(lambda a=a, b=b: a @ b)))
    columns = 8192
    transforms = {}
    for t in WINOGRAD_TILES:  # the NumPy kernel's two 1-D passes per transform (numpy_ref/conv_winograd.py)
        alpha = t + 2
        b_t, a_t, d = arr(alpha, alpha), arr(t, alpha), arr(alpha, alpha * columns)
        half_in, v = np.empty((alpha, alpha * columns), dt), np.empty((alpha, alpha, columns), dt)
        half_out, y_t = np.empty((t, alpha * columns), dt), np.empty((t, columns, t), dt)

        def input_transform(b_t=b_t, d=d, half=half_in, v=v, alpha=alpha) -> None:
            np.matmul(b_t, d, out=half)
            np.matmul(b_t, half.reshape(alpha, alpha, -1), out=v)

        def output_transform(a_t=a_t, d=d, half=half_out, y=y_t, t=t, alpha=alpha) -> None:
            np.matmul(a_t, d, out=half)
            np.matmul(half.reshape(t, alpha, -1).transpose(0, 2, 1), a_t.T, out=y)

        transforms[f"in{t}"] = timer(input_transform) / columns
        transforms[f"out{t}"] = timer(output_transform) / columns
    transforms.update(calibrate_compiled(dtype, timer))
    # A ResNet layer1-sized map (64 x 56 x 56): its copies outgrow the L2 cache, as real layers' do.
    c, hw, tiles = 64, 56, 14
    x = arr(1, c, hw, hw)
    padding = [(0, 0), (0, 0), (1, 1), (1, 1)]
    copy_s = timer(lambda: np.pad(x, padding))
    padded = np.pad(x, padding)
    window = sliding_window_view(padded, (3, 3), axis=(2, 3)).transpose(0, 1, 4, 5, 2, 3)
    gather_s = timer(lambda: window.reshape(1, c * 9, hw * hw))
    tile_view = sliding_window_view(padded, (6, 6), axis=(2, 3))[:, :, :4 * tiles:4, :4 * tiles:4]
    tile_view = tile_view.transpose(4, 5, 1, 0, 2, 3)
    tile_gather_s = timer(lambda: tile_view.reshape(36, -1))
    # the output tiles y[i, (c, th, tw), j] written to NCHW with the bias added on the way
    y = arr(4, c * tiles * tiles, 4)
    bias, out = arr(1, c, 1, 1, 1, 1), np.empty((1, c, tiles, 4, tiles, 4), dt)
    blocks = y.reshape(4, c, 1, tiles, tiles, 4).transpose(2, 1, 3, 0, 4, 5)
    scatter_s = timer(lambda: np.add(blocks, bias, out=out))
    # 64 MiB of weights (twice the L3 cache) through a matrix-vector product: the rate a layer's weights
    # come from memory at, which each GEMM pays once to pack them (values do not matter: no RNG for 64 MiB)
    weights, vectors = np.full((128 // size, 1024, 512), 0.5, dt), arr(128 // size, 512, 1)
    weight_s = timer(lambda: np.matmul(weights, vectors))
    tiny = arr(2, 2)
    call_s = timer(lambda: tiny @ tiny)
    stack = arr(64, 8, 8)
    slice_s = max(timer(lambda: np.matmul(stack, stack)) / 64, 1e-9)
    return NumpyProfile(
        dtype, f"measured on {cpu_name()} ({blas_threads()} BLAS thread(s))", tuple(gemm), transforms,
        copy_bytes_per_s=(x.size + padded.size) * size / copy_s,
        gather_bytes_per_s=2 * c * 9 * hw * hw * size / gather_s,
        tile_gather_bytes_per_s=2 * tile_view.size * size / tile_gather_s,
        scatter_bytes_per_s=2 * y.size * size / scatter_s, call_overhead_s=call_s, slice_overhead_s=slice_s,
        weight_bytes_per_s=weights.nbytes / weight_s)


# ---------------------------------------------------------------------------- the cache
def machine_key(dtype: str) -> dict[str, Any]:
    """What a profile is valid for: a different CPU, thread count, NumPy or BLAS measures again."""
    return {"backend": "numpy", "cpu": cpu_name(), "threads": blas_threads(), "numpy": np.__version__,
            "blas": blas_version(), "dtype": dtype, "version": PROFILE_VERSION,
            "compiled": compiled_transforms() is not None}


def profile_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "profiles" / f"numpy-{key['dtype']}-{digest}.json"


def read_cached(path: Path, key: dict[str, Any]) -> tuple[NumpyProfile | None, str | None]:
    """(the cached profile, None), or (None, why it was refused); (None, None) when there is no file."""
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            raise ValueError("not a convc CPU profile")
        if data.get("key") != key:
            raise ValueError("made for another machine, thread count or library version")
        return NumpyProfile.from_dict(data["profile"]), None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"CPU profile {path} refused ({e}); measuring again"


def calibration_enabled(option: object = None) -> bool:
    """The pass option `calibrate` if given, else CONVC_CALIBRATE (0/false/no/off disable it)."""
    if option is not None:
        return bool(option)
    return os.environ.get("CONVC_CALIBRATE", "1").strip().lower() not in ("0", "false", "no", "off")


def numpy_profile(dtype: str, calibrate_now: bool = True, log: list[str] | None = None,
                  timer: Callable[[Callable[[], object]], float] = seconds_per_call) -> NumpyProfile:
    """This machine's cached profile for `dtype`, measured (and cached) on first use; the shipped
    constants when `calibrate_now` is False or for a dtype without them (float16 on NumPy)."""
    if not calibrate_now or dtype not in SHIPPED:
        shipped = SHIPPED.get(dtype, SHIPPED["float32"])
        if compiled_transforms() is None:  # the NumPy transforms run: price those
            return dataclasses.replace(shipped, transform_s_per_column={
                k: v for k, v in shipped.transform_s_per_column.items() if not k.startswith("compiled")})
        return shipped
    key = machine_key(dtype)
    path = profile_path(key)
    cached, problem = read_cached(path, key)
    if problem and log is not None:
        log.append(f"choose_conv_algo: {problem}")
    if cached is not None:
        return cached
    profile = calibrate(dtype, timer)
    data = {"format": PROFILE_FORMAT, "key": key, "profile": profile.to_dict()}
    try:
        atomic_write(path, json.dumps(data, indent=1).encode())
    except OSError as e:  # a read-only home must not stop a compile: the profile is merely not cached
        if log is not None:
            log.append(f"choose_conv_algo: CPU profile {path} not written: {e}")
    return profile
