"""The Triton GPU backend: convc graphs compiled to a torch.nn.Module that runs only Triton kernels.

    model = convc.compile(net, backend="triton", dtype="float16")           # on a CUDA device
    model = convc.compile(net, backend="triton", device="cpu")              # CPU, under TRITON_INTERPRET=1

Options: device ("cuda" | "cpu"), tf32 (fp32 GEMMs on tf32 tensor cores), cuda_graphs (capture forward in
one CUDA graph), autotune (tune block sizes per shape; default on the GPU). Conv nodes pick their kernel
with attrs["algo"]: "implicit_gemm", "im2col", "direct", "winograd_2x2", "winograd_4x4" (None: automatic).
"""
from __future__ import annotations

from typing import Any

from convc.backend import Backend, Capabilities, CompiledModel
from convc.backends.triton.lower import CONV_ALGOS, LOWERINGS
from convc.ir import Graph
from convc.ops import SCHEMAS


def _compile(backend: Backend, graph: Graph, *, dtype: str, **options: Any) -> CompiledModel:
    from convc.backends.triton.module import TritonModule

    return TritonModule(graph, dtype, **options)


backend = Backend(
    "triton",
    Capabilities(
        ops=frozenset(SCHEMAS) - {"input", "param"},
        conv_algos=CONV_ALGOS,
        dtypes=("float32", "float16", "bfloat16"),
        fused_epilogue=True,
        devices=("cuda", "cpu"),
    ),
    kernels=dict(LOWERINGS),  # type: ignore[arg-type]  # lowerings: (node, NodeContext) -> launches
    compiler=_compile,
    description="Triton kernels (implicit GEMM, im2col, direct and Winograd convs) with a memory planner",
)
