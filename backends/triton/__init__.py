"""The Triton GPU backend: convc graphs compiled to a torch.nn.Module that runs only Triton kernels.

    model = convc.compile(net, backend="triton", dtype="float16")           # on a CUDA device
    model = convc.compile(net, backend="triton", device="cpu")              # CPU, under TRITON_INTERPRET=1

Options: device ("cuda" | "cpu"), tf32 (fp32 GEMMs on tf32 tensor cores), cuda_graphs (capture forward in
one CUDA graph), autotune (tune block sizes per shape; default on the GPU). Conv nodes pick their kernel
with attrs["algo"]: "implicit_gemm", "im2col", "direct", "winograd_2x2", "winograd_4x4", "depthwise" (None:
automatic).
"""
from __future__ import annotations

from typing import Any

from convc.backend import Backend, Capabilities, CompiledModel, LoweringTable
from convc.backends.triton import lower, lower_misc, lower_modern
from convc.backends.triton.context import NodeContext
from convc.backends.triton.launch import Launch
from convc.backends.triton.lower import default_conv_algo
from convc.backends.triton.module import TritonModule
from convc.ir import Graph
from convc.ops import SCHEMAS

LOWERINGS: LoweringTable[NodeContext, list[Launch]] = {**lower.LOWERINGS, **lower_misc.LOWERINGS,
                                                       **lower_modern.LOWERINGS}


def build_module(backend: Backend[NodeContext, list[Launch]], graph: Graph, *, dtype: str,
                 **options: Any) -> CompiledModel:
    return TritonModule(backend, graph, dtype, **options)


backend: Backend[NodeContext, list[Launch]] = Backend(
    "triton",
    Capabilities(
        ops=frozenset(SCHEMAS) - {"input", "param"},
        # preferred first; "depthwise" (groups == input channels only) wins the cost model's ties
        conv_algos=("depthwise", "implicit_gemm", "im2col", "direct", "winograd_2x2", "winograd_4x4"),
        dtypes=("float32", "float16", "bfloat16"),
        fused_epilogue=True,
        devices=("cuda", "cpu"),
    ),
    LOWERINGS,
    build=build_module,
    default_algo=default_conv_algo,
    description="Triton kernels (implicit GEMM, im2col, direct, depthwise and Winograd convs) with a memory "
                "planner",
)
