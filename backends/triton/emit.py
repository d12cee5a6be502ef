"""`module.emit(dir)`: everything that runs, written out for a person to read.

    dir/graph.txt                 the final IR (convc.printer.to_text)
    dir/kernels/<kernel>.py       the source of every @triton.jit kernel used, plus the shared helpers
    dir/launches_<shapes>.json    per compiled variant: each launch's node, kernel, grid, constexprs and
                                  chosen block configuration, and the memory plan (arena offsets, peak, naive)
"""
from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import triton.language as tl

from convc.backends.triton import common, epilogue
from convc.printer import to_text
from convc.serialize import atomic_write

if TYPE_CHECKING:
    from convc.backends.triton.module import TritonModule

HELPERS = (epilogue._apply_step, epilogue.apply_epilogue, epilogue.finish_tile, common.dot_acc,
           common.decode_pixel, common.window_origin, common.grouped_tile)


def _source(jit_fn: Any) -> str:
    return inspect.getsource(getattr(jit_fn, "fn", jit_fn))


def emit_module(module: TritonModule, directory: Path) -> list[Path]:
    written: list[Path] = []

    def write(rel: str, text: str) -> None:
        path = directory / rel
        atomic_write(path, text.encode())
        written.append(path)

    write("graph.txt", to_text(module.graph) + "\n")
    kernels: dict[str, Any] = {}
    for variant in module.variants.values():
        for launch in variant.launches:
            kernels.setdefault(launch.name, launch.kernel)
        tag = "_".join("x".join(str(d) for d in s) for s in variant.shapes)
        body = {
            "backend": "triton", "dtype": module.dtype, "device": module.device, "input_shapes": variant.shapes,
            "memory": {"peak_bytes": variant.plan.peak_bytes, "naive_bytes": variant.plan.naive_bytes,
                       "buffer_offsets": variant.plan.offsets, "aliases": variant.plan.aliases,
                       "concat_slices": {k: list(v) for k, v in variant.plan.slices.items()}},
            "launches": [launch.describe() for launch in variant.launches],
        }
        write(f"launches_{tag}.json", json.dumps(body, indent=1, default=str) + "\n")
    from convc.backends.triton.layout import strided_copy_kernel

    kernels.setdefault("strided_copy_kernel", strided_copy_kernel)  # input / output layout conversion
    for name, kernel in sorted(kernels.items()):
        write(f"kernels/{name}.py", f"# {inspect.getsourcefile(getattr(kernel, 'fn', kernel))}\n{_source(kernel)}")
    write("kernels/helpers.py", "\n\n".join(_source(h) for h in HELPERS))
    return written


def _jit_dependencies(jit_fn: Any, seen: dict[str, str]) -> None:
    """Adds, callees first, the source of `jit_fn` and of every jit function and constexpr it names."""
    fn = getattr(jit_fn, "fn", jit_fn)
    source = textwrap.dedent(inspect.getsource(fn))
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    for name in sorted(names):
        value = fn.__globals__.get(name)
        if name in seen or value is None:
            continue
        if isinstance(value, tl.constexpr):
            seen[name] = f"{name} = tl.constexpr({value.value!r})"
        elif hasattr(value, "fn") and hasattr(value, "arg_names"):  # a JITFunction
            _jit_dependencies(value, seen)
    seen.setdefault(fn.__name__, source.rstrip())


def standalone_source(kernel: Any) -> str:
    """The kernel's Python source with every jit helper and constant it uses, importable with only
    triton installed (no convc): what `--emit` writes beside the kernel's PTX and cubin."""
    seen: dict[str, str] = {}
    _jit_dependencies(kernel, seen)
    origin = inspect.getsourcefile(getattr(kernel, "fn", kernel))
    header = (f'"""{getattr(kernel, "fn", kernel).__name__}, written by convc from {origin} and its '
              f'helpers."""\nimport triton\nimport triton.language as tl\n')
    return header + "\n\n" + "\n\n\n".join(seen.values()) + "\n"
