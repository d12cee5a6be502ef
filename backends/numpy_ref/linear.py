"""Fully connected layer: x @ weightᵀ + bias, then the fused epilogue (one BLAS GEMM)."""
from __future__ import annotations

from typing import Any

import numpy as np

from convc.ir import Node
from convc.ops import epilogue_extra_inputs

from convc.backends.numpy_ref.epilogue import apply_epilogue


def linear(node: Node, args: list[Any]) -> np.ndarray:
    """Operands: x, one residual per ("add",) epilogue step, weight (out, in), then bias if any."""
    n_res = epilogue_extra_inputs(node.attrs)
    x, residuals = args[0], args[1:1 + n_res]
    weight = args[1 + n_res]
    bias = args[2 + n_res] if node.attrs["bias"] else None
    out = x @ weight.T  # a transposed view of the contiguous weight: BLAS takes it without a copy
    return apply_epilogue(out, bias, node.attrs["epilogue"], residuals)


KERNELS = {("linear", None): linear}
