"""Compiled kernels carried in a saved model, as entries of Triton's own disk cache.

Triton's JIT looks a kernel up in its disk cache before compiling it: the key (a SHA-256) hashes the
Triton build, the kernel's source, the argument types and alignments of the launch, the constexprs, the
compile options and the GPU target; the entry is a folder of files (`<kernel>.cubin`, `.ptx`, `.ttgir`,
..., `<kernel>.json` with the metadata) and a group file `__grp__<kernel>.json` that lists them, written
last so an entry is visible only when complete. So a saved model carries, for each kernel variant, the
entry exactly as Triton wrote it, and loading writes those entries back through Triton's cache manager
(into TRITON_CACHE_DIR, or ~/.triton/cache): the first launch finds its kernel and compiles nothing.

    entries = cache_entries(launches, GPU_TARGETS["sm_90"])   # {hash: {filename: bytes}}, no GPU needed
    install_entries(entries, arch=90)                         # on the GPU, before the first launch

The entries are compiled through the JIT's own launch path (`kernel.warmup`, with a stand-in driver that
reports the target), not with `triton.compile` on a hand-built signature: only then is the key the one
a real launch computes. A key that does not match (another Triton build, another alignment) costs a
compile, never a wrong kernel: the key covers everything the code depends on.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from convc.backends.triton.aot import variant_key
from convc.backends.triton.launch import Launch
from convc.backends.triton.targets import GpuTarget

from convc.errors import BackendError, FileFormatError

Entries = dict[str, dict[str, bytes]]  # Triton cache key (hex SHA-256) -> file name -> contents
GROUP_PREFIX = "__grp__"


class TargetDriver:
    """Stands in for Triton's CUDA driver while kernels are compiled for `target`: the JIT asks the active
    driver for the device, its stream and its target, and nothing else before it compiles (warmup does
    not launch). Its device id is its own, so its in-memory kernel cache is not the real GPU's."""

    def __init__(self, target: GpuTarget) -> None:
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", target.arch, 32)
        self.device = f"convc-aot-{target.name}"

    def get_current_device(self) -> str:
        return self.device

    def get_current_stream(self, device: Any = None) -> int:
        return 0

    def get_current_target(self) -> Any:
        return self.target

    def get_active_torch_device(self) -> Any:
        import torch

        return torch.device("meta")


@contextmanager
def driver_for(target: GpuTarget) -> Iterator[None]:
    """Triton's active driver is a TargetDriver for `target` inside the block, the previous one after."""
    from triton.runtime import driver

    previous = getattr(driver, "_active", None)
    driver.set_active(TargetDriver(target))
    try:
        yield
    finally:
        driver._active = previous  # not reset_active(): without a GPU it would fail to make a CUDA driver


def compile_through_jit(launch: Launch, target: GpuTarget) -> Any:
    """The CompiledKernel Triton's JIT makes (or finds in its disk cache) for this launch on `target`."""
    values = {**launch.meta, **launch.config}
    with driver_for(target):
        return launch.kernel.warmup(*launch.args, grid=launch.grid, **values)


def cache_entries(launches: Iterable[Launch], target: GpuTarget) -> Entries:
    """Every distinct kernel variant of `launches`, compiled for `target`, as the cache entries Triton
    wrote for it: {key: {file name: bytes}} (the group file is left out; install_entries writes it)."""
    entries: Entries = {}
    seen: set[str] = set()
    for launch in launches:
        variant = variant_key(launch, target)
        if variant in seen:
            continue
        seen.add(variant)
        compiled = compile_through_jit(launch, target)
        files = {}
        for name, path in compiled.metadata_group.items():
            with open(path, "rb") as f:
                files[name] = f.read()
        entries[compiled.hash] = files
    return entries


def entry_metadata(key: str, files: dict[str, bytes]) -> dict[str, Any]:
    """The metadata file of one entry (what it was compiled for), or a FileFormatError naming the entry."""
    names = [n for n in files if n.endswith(".json") and not n.startswith(GROUP_PREFIX)]
    try:
        meta = json.loads(files[names[0]]) if len(names) == 1 else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("hash") != key:
        raise FileFormatError(f"saved Triton kernel {key[:12]}: its metadata is missing or belongs to another "
                              f"kernel; compile the model again")
    return meta


def check_entries(entries: Entries, arch: int, triton_version: str) -> None:
    """Refuses entries compiled for another GPU architecture or by another Triton version."""
    for key, files in entries.items():
        meta = entry_metadata(key, files)
        target = meta.get("target") or {}
        made = (target.get("arch"), meta.get("triton_version"))
        if made != (arch, triton_version):
            raise BackendError(f"saved Triton kernel {meta.get('name', key[:12])} was compiled for "
                               f"sm_{made[0]} by Triton {made[1]}; here: sm_{arch}, Triton {triton_version}. "
                               f"Compile the model again here (or load it with recompile=True)")


def install_entries(entries: Entries, arch: int) -> int:
    """Writes `entries` into Triton's disk cache through its cache manager (each file atomically, the
    group file last); an entry already there is left alone. Returns how many entries were written; a
    cache that cannot be written is a warning (the kernels then compile on first launch)."""
    import triton
    from triton.runtime.cache import get_cache_manager

    check_entries(entries, arch, triton.__version__)
    written = 0
    for key, files in entries.items():
        meta_name = next(n for n in files if n.endswith(".json") and not n.startswith(GROUP_PREFIX))
        try:
            manager = get_cache_manager(key)
            if manager.get_group(meta_name) is not None:
                continue
            group = {name: manager.put(data, name, binary=True) for name, data in sorted(files.items())}
            manager.put_group(meta_name, group)
        except (OSError, RuntimeError) as e:  # an unwritable cache folder costs compiles, not the load
            warnings.warn(f"convc: cannot write the saved Triton kernels into Triton's cache ({e}); they will "
                          f"be compiled on first launch (set TRITON_CACHE_DIR to a writable folder)",
                          stacklevel=2)
            return written
        written += 1
    return written


def to_artifact(entries: Entries) -> dict[str, bytes]:
    """Entries as flat artifact names: 'triton-cache/<key>/<file>'."""
    return {f"triton-cache/{key}/{name}": data for key, files in entries.items() for name, data in files.items()}


def from_artifact(binaries: dict[str, bytes]) -> Entries:
    """The entries of to_artifact's names; a name that is not '<64 hex digits>/<plain file name>' under
    triton-cache/ is a FileFormatError (a file name never leaves its cache folder). The bare
    '<variant>.cubin' files of earlier convc versions are skipped: Triton compiles those kernels."""
    entries: Entries = {}
    for name, data in binaries.items():
        if "/" not in name and name.endswith(".cubin"):  # an older convc's bare cubins: never loaded
            continue
        parts = name.split("/")
        plain = len(parts) == 3 and parts[0] == "triton-cache" and len(parts[1]) == 64 and \
            all(c in "0123456789abcdef" for c in parts[1]) and parts[2] not in ("", ".", "..") and \
            "\\" not in parts[2] and not parts[2].startswith(GROUP_PREFIX)
        if not plain:
            raise FileFormatError(f"saved Triton binary '{name}' is not a Triton cache entry file")
        entries.setdefault(parts[1], {})[parts[2]] = data
    return entries
