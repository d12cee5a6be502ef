"""Ahead-of-time compilation of bound launches with the real Triton compiler, and what the output says.

Nothing runs: `triton.compile` takes the kernel, the argument types and the constexprs of a launch and
produces TTGIR, PTX and a cubin for a target (front end, MLIR passes, LLVM and ptxas), with or without a
GPU. Each distinct variant (kernel, types, constexprs, warps, stages, target) is compiled once per
process; Triton's own disk cache makes a second process fast too. Needs TRITON_INTERPRET unset: under the
interpreter the kernels are Python functions, not compilable JIT functions.

    compiled = compile_launch(launch, GPU_TARGETS["sm_90"])
    stats = kernel_stats(compiled)      # registers, spills, shared memory, pipelined loops, wgmma, TMA
"""
from __future__ import annotations

import hashlib
import inspect
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

import torch

from convc.backends.triton.common import INTERPRET
from convc.backends.triton.launch import COMPILE_OPTIONS, Launch
from convc.backends.triton.targets import GpuTarget
from convc.errors import BackendError

POINTER_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.uint8: "*u8"}
LAUNCH_OPTIONS = ("num_warps", "num_stages")
# TTGIR ops that move a tile into shared memory asynchronously: a loop that issues them is software
# pipelined (cp.async for plain loads, TMA for tensor descriptors).
ASYNC_COPY_OPS = ("ttg.async_copy_global_to_local", "ttng.async_tma_copy_global_to_local")
_INT32 = 2**31


def _specialization(arg: Any) -> tuple[str, str]:
    """(type, alignment flag) of one runtime argument, as Triton's JIT specialises it at launch: integers
    equal to 1 become constexprs; integers divisible by 16 and 16-byte aligned pointers are flagged "D"
    (tt.divisibility 16, which vectorised loads and cp.async rely on). The arena is allocated with
    CUDA's 256-byte alignment, so a view's alignment is that of its element offset."""
    if isinstance(arg, torch.Tensor):
        return POINTER_TYPES[arg.dtype], "D" if arg.storage_offset() * arg.element_size() % 16 == 0 else ""
    if isinstance(arg, bool):
        return "u1", ""
    if isinstance(arg, float):
        return "fp32", ""
    value = int(arg)
    if value == 1:
        return "constexpr", ""
    return ("i32" if -_INT32 <= value < _INT32 else "i64"), "D" if value % 16 == 0 else ""


def launch_signature(launch: Launch) -> tuple[dict[str, str], dict[str, Any], dict[tuple[int, ...], Any]]:
    """(argument types, constexpr values, divisibility attributes) of a launch, as `triton.compile`
    takes them and as the JIT would have specialised them for these arguments."""
    names = launch.kernel.arg_names
    sig: dict[str, str] = {}
    consts: dict[str, Any] = {}
    attrs: dict[tuple[int, ...], Any] = {}
    for i, (name, arg) in enumerate(zip(names, launch.args)):
        kind, flag = _specialization(arg)
        sig[name] = kind
        if kind == "constexpr":
            consts[name] = 1
        elif flag:
            attrs[(i,)] = [["tt.divisibility", 16]]
    values = {**launch.meta, **{k: v for k, v in launch.config.items() if k not in LAUNCH_OPTIONS}}
    defaults = inspect.signature(launch.kernel.fn).parameters  # a constexpr with a default may be left out
    for name in names[len(launch.args):]:
        consts[name] = values[name] if name in values else defaults[name].default
        sig[name] = "constexpr"
    return sig, consts, attrs


def launch_options(launch: Launch) -> dict[str, int]:
    return {k: int(launch.config[k]) for k in LAUNCH_OPTIONS if k in launch.config}


def variant_key(launch: Launch, target: GpuTarget) -> str:
    """A short stable name for one compiled variant: the kernel name and a hash of what specialises it."""
    sig, consts, attrs = launch_signature(launch)
    text = repr((launch.name, sorted(sig.items()), sorted(consts.items()), sorted(attrs),
                 sorted(launch_options(launch).items()), target.name))
    return f"{launch.name}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


_COMPILED: dict[str, Any] = {}


def compile_launch(launch: Launch, target: GpuTarget) -> Any:
    """The triton CompiledKernel of this launch's variant for `target` (compiled once per process)."""
    if INTERPRET:
        raise BackendError("compiling for a GPU target needs TRITON_INTERPRET unset (under the interpreter "
                           "the kernels are Python functions); run this in a process without it")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    key = variant_key(launch, target)
    if key not in _COMPILED:
        sig, consts, attrs = launch_signature(launch)
        source = ASTSource(launch.kernel, sig, consts, attrs)
        _COMPILED[key] = triton.compile(source, target=GPUTarget("cuda", target.arch, 32),
                                        options={**launch_options(launch), **COMPILE_OPTIONS})
    return _COMPILED[key]


@dataclass(frozen=True)
class KernelStats:
    """What the compiler made of one variant."""

    registers: int  # per thread
    spills: int  # bytes of local stack frame per thread: convc's kernels have no local arrays, so spills
    shared_memory: int  # bytes per CTA
    num_warps: int
    num_stages: int
    loops: int  # scf.for loops in the TTGIR
    pipelined_loops: int  # loops that issue asynchronous copies (cp.async or TMA) into shared memory
    pipelined_depth: int  # loop nesting depth of the deepest pipelined loop (1: not inside another loop)
    wgmma: bool  # Hopper warpgroup MMA in the PTX
    mma: bool  # any tensor-core instruction (mma.sync or wgmma)
    tma: int  # bulk tensor copy instructions (TMA loads through descriptors) in the PTX; 0: none
    cp_async: bool  # cp.async (Ampere-style asynchronous copies) in the PTX


def loop_structure(ttgir: str) -> tuple[int, int, int]:
    """(loops, pipelined loops, deepest nesting of a pipelined loop) of a TTGIR listing: regions are
    followed by their braces; a loop counts as pipelined when its own body issues an async copy."""
    frames: list[list[Any]] = []  # [is_loop, has_async_copy]
    loops = pipelined = depth = 0
    for line in ttgir.splitlines():
        text = line.split(" loc(")[0]
        if any(op in text for op in ASYNC_COPY_OPS):
            inner = next((f for f in reversed(frames) if f[0]), None)
            if inner is not None:
                inner[1] = True
        net = text.count("{") - text.count("}")
        for _ in range(max(0, -net)):
            if frames:
                is_loop, copies = frames.pop()
                if is_loop and copies:
                    pipelined += 1
                    depth = max(depth, 1 + sum(1 for f in frames if f[0]))
        for i in range(max(0, net)):
            is_loop = i == net - 1 and "scf.for" in text
            loops += is_loop
            frames.append([is_loop, False])
    return loops, pipelined, depth


def resource_usage(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, stack bytes per thread) read from the cubin by the cuobjdump Triton ships."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        done = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True,
                              timeout=60, check=False)
    found = re.search(r"REG:(\d+)\s+STACK:(\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise BackendError(f"cuobjdump could not read the resource usage of a cubin: {done.stderr.strip()}")
    return int(found.group(1)), int(found.group(2))


def kernel_stats(compiled: Any) -> KernelStats:
    ptx = compiled.asm["ptx"]
    registers, stack = resource_usage(compiled.asm["cubin"])
    loops, pipelined, depth = loop_structure(compiled.asm["ttgir"])
    meta = compiled.metadata
    return KernelStats(registers=registers, spills=stack, shared_memory=int(meta.shared),
                       num_warps=int(meta.num_warps), num_stages=int(meta.num_stages), loops=loops,
                       pipelined_loops=pipelined, pipelined_depth=depth, wgmma="wgmma.mma_async" in ptx,
                       mma="wgmma.mma_async" in ptx or "mma.sync" in ptx,
                       tma=ptx.count("cp.async.bulk.tensor"),
                       cp_async="cp.async.cg" in ptx or "cp.async.ca" in ptx)
