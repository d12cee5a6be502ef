"""What a saved Triton module keeps beyond its graph: packed weights, the kernel configuration of every
tunable launch, and the compiled kernels when there is a GPU target (convc/artifact.py), as entries of
Triton's disk cache (backends/triton/kernel_cache.py).

    state = export_state(module)    # {"meta": ..., "arrays": ..., "binaries": ..., "binaries_note": ...}
    TritonModule(backend, graph, dtype, device="cpu", saved_state=state)   # no tuning, no packing
    module.install_saved_kernels()  # on a GPU of the saved architecture: the first launch compiles nothing

Restoring puts the saved configurations in front of the tuner and switches tuning off, so the module runs
exactly the configurations that were measured when it was compiled.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from convc.backends.triton.autotune import Tuner
from convc.backends.triton.common import INTERPRET

from convc.errors import FileFormatError

if TYPE_CHECKING:
    from convc.backends.triton.module import TritonModule

NO_BINARIES = ("none: under the Triton interpreter (TRITON_INTERPRET=1) kernels run as Python functions, so "
               "nothing is compiled")


def _packed_name(node: str, kind: str) -> str:
    return f"packed/{node}/{kind}"


def export_state(module: TritonModule) -> dict[str, Any]:
    launches = [launch for variant in module.variants.values() for launch in variant.launches]
    tuned = {Tuner.key(launch, module.dtype): {"config": dict(launch.config), "node": launch.node}
             for launch in launches if launch.family}
    arrays: dict[str, np.ndarray] = {}
    packed: dict[str, dict[str, str]] = {}
    if module.device != "meta":  # an ahead-of-time module's tensors have no data: it repacks on load
        for (node, kind), tensor in module._packed.items():
            t = tensor.detach().cpu()
            name = _packed_name(node, kind)
            arrays[name] = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
            packed[name] = {"node": node, "kind": kind, "dtype": str(t.dtype).replace("torch.", "")}
    binaries, note = _binaries(module, launches)
    return {"meta": {"tuned": tuned, "packed": packed, "binaries": sorted(binaries)}, "arrays": arrays,
            "binaries": binaries, "binaries_note": note}


def _binaries(module: TritonModule, launches: list[Any]) -> tuple[dict[str, bytes], str]:
    if INTERPRET:
        return {}, NO_BINARIES
    from convc.backends.triton.kernel_cache import cache_entries, to_artifact
    from convc.backends.triton.targets import local_target

    target = module.target or local_target()
    if target is None:
        return {}, "none: no GPU target (the local GPU is of a generation convc does not target)"
    return to_artifact(cache_entries(launches, target)), (
        f"Triton cache entries for {target.name} (cubin, PTX, IR and metadata of each kernel variant): "
        f"loaded on a GPU of that architecture with the same Triton, they go into Triton's cache and the "
        f"first launch compiles nothing")


def restore_state(module: TritonModule, state: dict[str, Any]) -> None:
    """Saved configurations replace the tuner's (tuning off); saved packed weights replace packing."""
    meta, arrays = state.get("meta", {}), state.get("arrays", {})
    module.tuner.entries = dict(meta.get("tuned", {}))
    module.tuner.enabled = False
    from convc.backends.triton.kernel_cache import from_artifact

    module.saved_kernels = from_artifact(state.get("binaries", {}))
    if module.device == "meta":
        return
    for name, info in meta.get("packed", {}).items():
        if name not in arrays:
            raise FileFormatError(f"saved Triton state lists packed weight {name} but does not hold it")
        t = torch.from_numpy(np.ascontiguousarray(arrays[name]))
        if info["dtype"] == "bfloat16":
            t = t.view(torch.bfloat16)
        module._packed[(info["node"], info["kind"])] = t.to(module.device)


def install_saved_kernels(module: TritonModule) -> int:
    """Writes the saved kernels into Triton's disk cache when the module runs on a CUDA GPU (not the
    interpreter); a BackendError when they were compiled for another architecture or Triton. Returns how
    many cache entries were written."""
    if not module.saved_kernels or module.device != "cuda" or INTERPRET:
        return 0
    from convc.backends.triton.kernel_cache import install_entries

    major, minor = torch.cuda.get_device_capability()
    return install_entries(module.saved_kernels, arch=major * 10 + minor)
