"""Per-shape block configurations for the GEMM-like kernels, tuned on the GPU and cached on disk.

Every candidate's output is compared with the reference (first) candidate's before it may win: a Triton
miscompile (a flattened conv K loop at num_warps=8 once gave wrong results) must lose, not win. A candidate
whose compiled kernel spills registers to local memory is never timed (the 8-warp 128x256 / 256x128 tiles
do, with a residual epilogue); which ones spill depends on the Triton and ptxas versions, so the tuner asks
the loaded kernel rather than a list. Results
live in a JSON file under $CONVC_CACHE_DIR (default ~/.cache/convc), written atomically; a corrupt file is
rebuilt rather than trusted, an entry no candidate list offers is dropped and tuned again, and racing
runs merge their entries into the file under a lock (convc/files.py). Under the CPU interpreter one small configuration is used, untuned.

    tuner = Tuner(enabled=True)
    launch = tuner.choose(launch, dtype="float16")   # the cached or newly measured best configuration
    tuner.save()
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import triton

from convc.backends.triton import common
from convc.backends.triton.common import INTERPRET, interpreter_block
from convc.backends.triton.launch import Launch
from convc.backends.triton.tma import TMA_ACTIVATIONS, TMA_WEIGHTS
from convc.files import cache_dir, update_json
from convc.numerics import budget

CACHE_VERSION = 1
CACHE_FILE = "triton_autotune.json"
TUNABLE = {"conv_implicit_gemm": ("BLOCK_M", "BLOCK_N", "BLOCK_K", "TMA"),
           "gemm": ("BLOCK_M", "BLOCK_N", "BLOCK_K", "TMA"),
           "conv_direct": ("BLOCK_M", "BLOCK_N")}
TMA_REQUEST = TMA_WEIGHTS | TMA_ACTIVATIONS  # what a default tensor-core config asks for; binders cut it down
LAUNCH_KEYS = ("num_warps", "num_stages")

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages). fp16 / bf16 tiles feed wgmma (64+ rows) with
# BLOCK_K 64 and 3-5 cp.async stages; the first four are the defaults, largest first, and every one was
# checked free of spills for sm_90 by the static report (docs/triton.md). fp32 runs on FMA units: narrower
# K blocks keep its operands in registers.
_TENSOR_CORE_TILES = [(128, 128, 64, 4, 3), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4), (64, 64, 64, 4, 4),
                      (32, 64, 32, 4, 3), (16, 64, 32, 4, 3),
                      (128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (128, 128, 64, 8, 3), (128, 128, 32, 4, 4),
                      (64, 64, 32, 4, 5), (128, 64, 32, 4, 5)]
_FP32_TILES = [(64, 64, 32, 4, 3), (128, 64, 32, 4, 3), (64, 128, 32, 4, 3), (32, 64, 32, 4, 3), (16, 64, 32, 4, 3),
               (128, 128, 32, 8, 3), (64, 64, 16, 4, 4), (32, 32, 32, 4, 4)]
# The rgb first layer's flat (position, channel) gather needs registers for every element's decode;
# 128x64x32 with 4 warps spills 136 bytes under triton 3.6 (the GPU machine's), so the default is 64x64.
_GATHER_TILES = [(64, 64, 32, 4, 4), (128, 64, 32, 8, 4), (64, 64, 64, 4, 4), (64, 128, 32, 4, 4),
                 (128, 128, 64, 8, 3), (64, 64, 32, 4, 5), (32, 64, 32, 4, 3)]
FULL_WAVE_TILES = 132  # sm_90's SMs: a default tile is the largest one whose grid still fills them once
# Direct conv tiles: 16 fp32 sums per thread (8 warps for the 4K-element tiles). 64 sums (64x64 with 2
# warps, 128x64 with 4) spill on sm_90 everywhere; 32 (64x64 and 128x32 with 4 warps) spill 8 bytes in fp16
# under triton 3.9 (tests/triton/config_grid_check.py checks every tile here, no spills).
_DIRECT_TILES = [(64, 32, 4), (128, 32, 8), (64, 64, 8), (32, 64, 4), (128, 16, 4), (256, 16, 8)]


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _fits(tile: int, size: int) -> bool:
    """A tile no more than twice the next power of two above the size (wider tiles only mask work away)."""
    return tile <= max(16, triton.next_power_of_2(size))


def _tiles(family: str, dtype: str, gather: bool) -> list[tuple[int, int, int, int, int]]:
    if gather:
        return _GATHER_TILES
    return _FP32_TILES if dtype == "float32" else _TENSOR_CORE_TILES


def candidate_configs(family: str, sizes: tuple[int, int, int], dtype: str = "float16",
                      gather: bool = False, tma: int = 0) -> list[dict[str, Any]]:
    """GPU candidates for (M, N, K)-like sizes; the first is the default tile without TMA, and the
    reference every other candidate is checked against: the largest tile whose grid fills the GPU once
    (else the one with the most tiles). With `tma` (the bits a launch's operands allow, tma.py) each
    tensor-core tile is followed by its twin reading those operands through tensor descriptors."""
    m, n, k = sizes
    if family == "conv_direct":
        tiles = [dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=w, num_stages=1) for bm, bn, w in _DIRECT_TILES
                 if _fits(bn, n)]
        return tiles or [dict(BLOCK_M=64, BLOCK_N=16, num_warps=4, num_stages=1)]
    out = [dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, TMA=0, num_warps=w, num_stages=s)
           for bm, bn, bk, w, s in _tiles(family, dtype, gather) if _fits(bm, m) and _fits(bn, n) and _fits(bk, k)]
    if not out:
        out = [dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, TMA=0, num_warps=4, num_stages=2)]

    def grid(cfg: dict[str, Any]) -> int:
        return triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"])

    big = [c for c in out[:6] if c["BLOCK_M"] >= 64]  # wgmma tiles; split-K fills the GPU when few
    defaults = big or out[:6]
    first = next((c for c in defaults if grid(c) >= FULL_WAVE_TILES), max(defaults, key=grid))
    ordered = [first] + [c for c in out if c is not first]
    if not tma or dtype == "float32":  # fp32 runs on FMA units from registers: no TMA twins
        return ordered
    return [cfg for c in ordered for cfg in (c, {**c, "TMA": tma})]


def interpreter_config(family: str, sizes: tuple[int, int, int]) -> dict[str, Any]:
    """One configuration with blocks as large as the problem allows: the interpreter pays per program and per
    loop step (tens of microseconds an op), while NumPy makes a larger block nearly free."""
    m, n, k = sizes
    bn = interpreter_block(n)
    if family == "conv_direct":
        return dict(BLOCK_M=interpreter_block(m, common.INTERPRETER_TILE // bn), BLOCK_N=bn)
    bk = interpreter_block(k)
    return dict(BLOCK_M=interpreter_block(m, common.INTERPRETER_TILE // max(bn, bk)), BLOCK_N=bn, BLOCK_K=bk)


def default_config(family: str, sizes: tuple[int, int, int], dtype: str, gather: bool = False,
                   tma: int = TMA_REQUEST) -> dict[str, Any]:
    """The untuned configuration: the first candidate, on the GPU with a tensor-core dtype asking for the
    `tma` bits (the launch binder keeps those its operands' alignment allows)."""
    if INTERPRET:
        return interpreter_config(family, sizes)
    first = candidate_configs(family, sizes, dtype, gather)[0]
    return {**first, "TMA": tma} if "TMA" in first and dtype != "float32" else first


def _valid_entry(family: str, entry: Any) -> bool:
    """Structure only: every key of the family, each a power of two (num_stages: 1 to 8)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        return False
    cfg = entry["config"]
    keys = set(TUNABLE.get(family, ())) | set(LAUNCH_KEYS)
    tma = cfg.get("TMA", 0)
    sizes = {k: v for k, v in cfg.items() if k != "TMA"}
    if set(cfg) not in (keys, keys - {"TMA"}):  # a config without TMA reads no operand through it
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()):
        return False
    if tma not in (0, TMA_WEIGHTS, TMA_WEIGHTS | TMA_ACTIVATIONS) or isinstance(tma, bool):
        return False
    return all(v & (v - 1) == 0 for k, v in sizes.items() if k != "num_stages") and cfg["num_stages"] <= 8


def _valid_entries(data: Any) -> dict[str, Any] | None:
    """The well-formed entries of a cache document, or None when it is not one."""
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return None
    return {k: v for k, v in data["entries"].items() if isinstance(k, str) and _valid_entry(k.split("|", 1)[0], v)}


def _device_name() -> str:
    if INTERPRET or not torch.cuda.is_available():
        return "interpreter"
    return torch.cuda.get_device_name()


def device_rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """convc.numerics.rel_err computed where the tensors live (max |a - e| / max |e|, fp32 arithmetic on
    the device; a non-finite value in `actual` gives inf): one scalar comes back, not the output."""
    if actual.numel() == 0:
        return 0.0
    a = actual.float()
    e = expected.float()
    if not bool(torch.isfinite(a).all()):
        return float("inf")
    scale = max(float(e.abs().max()), 1e-30)
    return float((a - e).abs().max()) / scale


_SOURCE_HASHES: dict[int, str] = {}


def source_hash(kernel: Any) -> str:
    """A short hash of the kernel's source and every jit helper and constant it uses."""
    if id(kernel) not in _SOURCE_HASHES:
        from convc.backends.triton.emit import standalone_source

        try:
            text = standalone_source(kernel)
        except (OSError, TypeError):  # no source to read (a stand-in kernel in a test)
            text = getattr(kernel, "__name__", type(kernel).__name__)
        _SOURCE_HASHES[id(kernel)] = hashlib.sha256(text.encode()).hexdigest()[:12]
    return _SOURCE_HASHES[id(kernel)]


Bench = Callable[[Callable[[], None]], float]


def gpu_bench(fn: Callable[[], None]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=10, rep=40))


def spilled_bytes(compiled: Any) -> int:
    """Local-memory bytes per thread of a launched kernel: Triton's CompiledKernel reads `n_spills` from
    the driver when it loads the cubin (the stack size the static report reads with cuobjdump). 0 when
    the launch returned no compiled kernel (the interpreter, a stand-in kernel in a test)."""
    n = getattr(compiled, "n_spills", None)
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def wall_bench(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Tuner:
    """Chooses block configurations; `enabled=False` keeps the default (or a cached) configuration."""

    def __init__(self, enabled: bool, path: Path | None = None, bench: Bench | None = None,
                 candidates: Callable[..., list[dict[str, Any]]] = candidate_configs) -> None:
        self.enabled = enabled
        self.path = path or cache_path()
        self.bench = bench or (wall_bench if INTERPRET else gpu_bench)
        self.candidates = candidates
        self.entries: dict[str, Any] = self._load()
        self.dirty = False
        self.on_disk = dict(self.entries)  # what the file held; save() merges only what differs from it
        self.rejected: list[tuple[str, dict[str, Any], float]] = []  # (key, config, error) for reports
        self.spilled: list[tuple[str, dict[str, Any], int]] = []  # (key, config, bytes): correct, not timed

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            warnings.warn(f"convc: autotune cache {self.path} is unreadable ({e}); rebuilding it", stacklevel=2)
            return {}
        entries = _valid_entries(data)
        if entries is None:
            warnings.warn(f"convc: autotune cache {self.path} has an unknown format; rebuilding it", stacklevel=2)
            return {}
        return entries

    def save(self) -> None:
        """Merges this run's new entries into the file as it is now, under a lock: racing runs keep both."""
        if not self.dirty:
            return
        mine = {k: v for k, v in self.entries.items() if self.on_disk.get(k) != v}

        def merge(current: Any) -> dict[str, Any]:
            return {"version": CACHE_VERSION, "entries": {**(_valid_entries(current) or {}), **mine}}

        try:
            written = update_json(self.path, merge)["entries"]
        except OSError as e:  # a read-only cache folder must not stop a compile: the tuning is merely lost
            warnings.warn(f"convc: autotune cache {self.path} not written: {e}", stacklevel=2)
            return
        self.entries, self.on_disk = {**self.entries, **written}, dict(written)
        self.dirty = False

    @staticmethod
    def key(launch: Launch, dtype: str) -> str:
        """Family, kernel, sizes, dtype, constexprs, device, triton version and a hash of the kernel's
        source with its helpers: a changed kernel never reuses a configuration tuned for the old one."""
        meta = ",".join(f"{k}={v}" for k, v in sorted(launch.meta.items()))
        return "|".join([launch.family or "", launch.name, repr(launch.tune_key), dtype, meta, _device_name(),
                         triton.__version__, source_hash(launch.kernel)])

    def choose(self, launch: Launch, dtype: str) -> Launch:
        if launch.family is None:
            return launch
        key = self.key(launch, dtype)
        entry = self.entries.get(key)
        if entry is not None and self._plausible(launch, entry["config"], dtype):
            return launch.with_config(entry["config"])
        if entry is not None:  # e.g. BLOCK_M=65536 edited in by hand: never launched, tuned again
            warnings.warn(f"convc: autotune cache entry for {launch.name} has a configuration no candidate "
                          f"list offers ({entry['config']}); dropped", stacklevel=2)
            del self.entries[key]
        if not self.enabled:
            return launch
        configs = self.candidates(launch.family, launch.tune_key[:3], dtype, bool(launch.meta.get("GATHER_K")),
                                  launch.tma)
        best = self.tune(launch, dtype, configs, key)
        self.entries[key] = {"config": best, "node": launch.node}
        self.dirty = True
        return launch.with_config(best)

    def _plausible(self, launch: Launch, config: dict[str, Any], dtype: str) -> bool:
        """A cached configuration is one the tuner itself could have chosen for this launch."""
        sizes, gather = launch.tune_key[:3], bool(launch.meta.get("GATHER_K"))
        return (config in self.candidates(launch.family, sizes, dtype, gather, launch.tma)
                or config == default_config(launch.family, sizes, dtype, gather, launch.tma))

    def tune(self, launch: Launch, dtype: str, configs: list[dict[str, Any]], key: str = "") -> dict[str, Any]:
        """Runs every config, rejects those whose output differs from the first's, sets aside those whose
        compiled kernel spills, and returns the fastest of the rest (the first config when none is left)."""
        out = launch.out
        assert out is not None, "a tunable launch names its output view"
        tolerance = budget(dtype)
        reference_run = launch.with_config(configs[0])
        reference_run()
        reference = out.as_matrix().clone()  # stays on the device, in the kernel's dtype
        timings: list[tuple[float, int]] = []
        for i, cfg in enumerate(configs):
            run = launch.with_config(cfg)
            out.as_matrix().fill_(float("nan"))  # a config that skips part of the output cannot pass
            try:
                compiled = run()
            except Exception as e:  # out of shared memory or registers: that config just cannot win
                self.rejected.append((key, cfg, float("inf")))
                warnings.warn(f"convc: {launch.name} config {cfg} failed to run: {type(e).__name__}", stacklevel=2)
                continue
            err = device_rel_err(out.as_matrix(), reference)
            if err > tolerance:
                self.rejected.append((key, cfg, err))
                warnings.warn(f"convc: {launch.name} config {cfg} gave wrong results (error {err:.2e} against "
                              f"{configs[0]}); excluded", stacklevel=2)
                continue
            spills = spilled_bytes(compiled)
            if spills:  # correct but slow: local memory traffic in the main loop or the epilogue
                self.spilled.append((key, cfg, spills))
                continue
            timings.append((self.bench(run), i))
        reference_run()  # leave the reference output in place
        if not timings:
            return dict(configs[0])
        return dict(configs[min(timings)[1]])
