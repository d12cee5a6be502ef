"""The two torch backends and the lowering table they share.

`backend` ("torch") runs the graph node by node in eager PyTorch; `compile_backend` ("torch-compile") runs
the same lowered steps as one function under torch.compile. Both are built from one table, so the two can
never disagree on how an op is lowered.
"""
from __future__ import annotations

from convc.backend import Backend, Capabilities, LoweringContext
from convc.interpreter import Step, kernel_lowerings
from convc.ir import Node
from convc.ops import CONV_OPS, SCHEMAS

from . import convolution, elementwise, normalization, pooling
from .model import compile_eager, compile_with_torch_compile

# Everything in the op-schema table except the graph boundary, which the runner handles itself.
TORCH_OPS = frozenset(SCHEMAS) - {"input", "param"}
LOWERINGS = kernel_lowerings({**convolution.KERNELS, **elementwise.KERNELS, **normalization.KERNELS,
                              **pooling.KERNELS})


class TorchBackend(Backend[LoweringContext, Step]):
    """A Backend whose convolutions ignore the `algo` attribute: cuDNN (or oneDNN on a CPU) picks the
    algorithm itself, so any plan a pass wrote for another backend still runs here."""

    def algo_of(self, node: Node, ctx: LoweringContext) -> str | None:
        return None if node.op in CONV_OPS else super().algo_of(node, ctx)


def _capabilities() -> Capabilities:
    return Capabilities(
        ops=TORCH_OPS,
        conv_algos=("cudnn",),  # not one of convc.ops.CONV_ALGOS: cuDNN / oneDNN choose inside
        dtypes=("float32", "float64", "float16", "bfloat16"),
        fused_epilogue=True,
        devices=("cpu", "cuda"),
    )


backend = TorchBackend(
    "torch", _capabilities(), LOWERINGS, build=compile_eager,
    description="eager PyTorch (torch.nn.functional; cuDNN on CUDA): the oracle and the cuDNN baseline",
)
compile_backend = TorchBackend(
    "torch-compile", _capabilities(), LOWERINGS, build=compile_with_torch_compile,
    description="the torch backend's lowering as one function under torch.compile (Inductor baseline)",
)
