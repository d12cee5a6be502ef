"""The two torch backends and the kernel table they share.

`backend` ("torch") runs the graph node by node in eager PyTorch; `compile_backend` ("torch-compile") runs
the same kernels as one function under torch.compile. The kernel modules register into `backend`; the
compile backend reads the very same dict, so the two can never disagree on how an op is lowered.
"""
from __future__ import annotations

from convc.backend import Backend, Capabilities, Kernel
from convc.ir import Node
from convc.ops import SCHEMAS

CONV_OPS = frozenset({"conv1d", "conv2d", "conv3d"})
# Everything in the op-schema table except the graph boundary, which the runner handles itself.
TORCH_OPS = frozenset(SCHEMAS) - {"input", "param"}


class TorchBackend(Backend):
    """A Backend whose convolutions ignore the `algo` attribute: cuDNN (or oneDNN on a CPU) picks the
    algorithm itself, so any plan a pass wrote for another backend still runs here."""

    def lookup(self, node: Node) -> Kernel:
        if node.op in CONV_OPS:
            node = node.replace(attrs={**node.attrs, "algo": None})
        return super().lookup(node)


def _capabilities() -> Capabilities:
    return Capabilities(
        ops=TORCH_OPS,
        conv_algos=("cudnn",),
        dtypes=("float32", "float64", "float16", "bfloat16"),
        fused_epilogue=True,
        devices=("cpu", "cuda"),
    )


backend = TorchBackend(
    "torch", _capabilities(),
    description="eager PyTorch (torch.nn.functional; cuDNN on CUDA): the oracle and the cuDNN baseline",
)
compile_backend = TorchBackend(
    "torch-compile", _capabilities(), kernels=backend.kernels,
    description="the torch backend's lowering as one function under torch.compile (Inductor baseline)",
)
