"""The torch reference backends: the oracle for every other backend and the cuDNN / Inductor baselines.

    import convc
    model = convc.compile(net, backend="torch", dtype="float32", device="cpu")
    y = model(x)                                   # torch.Tensor (or NumPy array) in, torch.Tensor out
    fast = convc.compile(net, backend="torch-compile", mode="reduce-overhead", channels_last=True)

Both lower every op of convc.ops.SCHEMAS to torch.nn.functional, node by node; "torch-compile" wraps that
forward in torch.compile. Options: device ("cpu" | "cuda"; default cuda when available), channels_last
(NHWC memory format for 4D tensors), tf32 (TF32 in cuBLAS/cuDNN, default off), and for "torch-compile"
mode (None | "reduce-overhead" | "max-autotune").
"""
from __future__ import annotations

from .model import TorchModel
from .table import backend, compile_backend

__all__ = ["TorchModel", "backend", "compile_backend"]
