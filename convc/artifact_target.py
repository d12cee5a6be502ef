"""What a saved compiled model was made for, and what differs here: the convc version, the backend and the
versions of the packages that generate its code, the device, the GPU and its architecture.

    saved = describe_target("torch", model)    # {'convc': '0.1.0', 'backend': 'torch', 'device': 'cpu', ...}
    target_differences(saved, describe_target("torch", loaded))   # ['convc 0.1.0 (here: 0.2.0)']
"""
from __future__ import annotations

from importlib import metadata
from typing import Any

# The packages whose version decides the code a backend runs (a new torch may lower differently).
CODE_PACKAGES = {"torch": ("torch",), "torch-compile": ("torch",), "triton": ("torch", "triton")}
COMPARED = ("convc", "backend", "packages", "device", "gpu", "arch", "interpreter")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def local_gpu() -> tuple[str, str]:
    """(name, 'sm_XY') of the current CUDA device, or empty strings without one."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "", ""
        major, minor = torch.cuda.get_device_capability()
        return torch.cuda.get_device_name(), f"sm_{major}{minor}"
    except Exception:  # noqa: BLE001  no torch, no driver, a broken CUDA setup: no GPU
        return "", ""


def describe_target(backend: str, model: Any) -> dict[str, Any]:
    """The convc version, backend, code-generating packages, device (cpu / cuda / meta for an ahead-of-time
    GPU target), GPU name and architecture; a model may add keys with `artifact_target()` (Triton: whether
    it runs under the interpreter, the ahead-of-time target)."""
    import convc

    device = getattr(model, "device", "cpu")
    device = str(getattr(device, "type", device)).split(":")[0]
    gpu, arch = local_gpu() if device == "cuda" else ("", "")
    described: dict[str, Any] = {
        "convc": convc.__version__, "backend": backend, "device": device, "gpu": gpu, "arch": arch,
        "packages": {p: _version(p) for p in CODE_PACKAGES.get(backend, ())}, "interpreter": False,
    }
    if hasattr(model, "artifact_target"):
        described.update(model.artifact_target())
    return described


def target_differences(saved: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """Each way `here` differs from `saved`, as 'device cuda (here: cpu)'. A model compiled ahead of time
    for a GPU architecture (device 'meta') fits any GPU of that architecture."""
    saved = dict(saved)
    if saved.get("device") == "meta" and here.get("device") == "cuda":
        saved.update(device="cuda", gpu=here.get("gpu"))
    out = []
    for key in COMPARED:
        if saved.get(key) != here.get(key):
            out.append(f"{key} {_show(saved.get(key))} (here: {_show(here.get(key))})")
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
    return str(value) if value not in ("", None) else "none"
