"""The op-schema table: the single source of shape inference, attribute validation, parameter shapes
and multiply-accumulate counts. The DSL, the verifier, the summary and every backend read it.

A node's inputs are its activation operands followed by its parameter operands (one per slot that
`OpSchema.params` names, in order). `infer` raises `InvalidNode` with a message that the caller
prefixes with the op and node name, e.g. "conv2d 'features.0': kernel 11x11 does not fit ...".

The schemas live by family in convolution.py, pooling.py, activation.py, layout.py and tensor.py;
importing this package registers all of them in `SCHEMAS`.
"""
from __future__ import annotations

from convc.ops import activation as _activation  # noqa: F401  (registers the mobile-net activations)
from convc.ops import layout as _layout  # noqa: F401  (registers the layout ops)
from convc.ops import tensor as _tensor  # noqa: F401  (registers the remaining schemas)
from convc.ops.convolution import (
    CONV_ALGOS, CONV_ATTRS, CONV_OPS, SPATIAL, conv_output_size, input_scale_inputs,
)
from convc.ops.pooling import POOL_ATTRS, pool_output_size
from convc.ops.schema import (
                              ACTIVATION_OPS,
                              BUFFER_SLOTS,
                              EPILOGUE_ACTIVATIONS,
                              SCHEMAS,
                              Attrs,
                              InvalidNode,
                              OpSchema,
                              Shape,
                              epilogue_extra_inputs,
                              fmt_dims,
                              fmt_padding,
                              register_op,
                              schema_of,
)

# The ops with a weight and a fused epilogue (schema tag "layer"): what fold_bn and fuse_epilogue rewrite.
LAYER_OPS = (*CONV_OPS, "linear")

__all__ = [
    "ACTIVATION_OPS", "BUFFER_SLOTS", "CONV_ALGOS", "CONV_ATTRS", "CONV_OPS", "EPILOGUE_ACTIVATIONS",
    "LAYER_OPS", "POOL_ATTRS",
    "SCHEMAS", "SPATIAL", "Attrs", "InvalidNode", "OpSchema", "Shape", "conv_output_size",
    "epilogue_extra_inputs", "input_scale_inputs",
    "fmt_dims", "fmt_padding", "pool_output_size", "register_op", "schema_of",
]
