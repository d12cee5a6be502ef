"""Layer norm over the channels of (N, C, positions), compiled: ConvNeXt's 23 layer norms.

NumPy's version (normalization.layer_norm) makes seven whole-tensor passes and three temporaries of
the input's size. Here a block of positions (POSITIONS at a time) stays in the cache while three loops
run over its channels: the sum (mean), the sum of squared deviations (the biased variance, two-pass as
torch computes it, not E[x²] - E[x]², which cancels), then the normalized, scaled and shifted output.
Everything runs in float64 whatever the dtype, rounded once on the store: a float32 mean of 1000
rounded before the subtraction would cost 4e-5 of a unit deviation.

    out = np.empty_like(x)                         # x: (N, C, P) C-contiguous, float32 or float64
    layer_norm_channels(x, weight, bias, 1e-6, out)
"""
from __future__ import annotations

import math

import numpy as np

from convc.backends.numpy_ref import jit

POSITIONS = 256  # a block of 256 positions x 768 channels of float32 is 768 KiB: the L2 cache


@jit.kernel
def layer_norm_channels(x, weight, bias, eps, out):  # type: ignore[no-untyped-def]
    """out[n, c, p] = (x[n, c, p] - mean[n, p]) * rstd[n, p] * weight[c] + bias[c]; see the module."""
    images, channels, positions = x.shape
    sums, centre = np.empty(POSITIONS, np.float64), np.empty(POSITIONS, np.float64)
    for n in range(images):
        for p0 in range(0, positions, POSITIONS):
            m = min(POSITIONS, positions - p0)
            acc = sums[:m]
            acc[:] = 0.0
            for c in range(channels):
                row = x[n, c, p0:p0 + m]
                for k in range(m):
                    acc[k] += row[k]
            mean = centre[:m]
            for k in range(m):
                mean[k] = acc[k] / channels
                acc[k] = 0.0
            for c in range(channels):
                row = x[n, c, p0:p0 + m]
                for k in range(m):
                    d = row[k] - mean[k]
                    acc[k] += d * d
            for k in range(m):
                acc[k] = 1.0 / math.sqrt(acc[k] / channels + eps)
            rstd = acc
            for c in range(channels):
                row, into = x[n, c, p0:p0 + m], out[n, c, p0:p0 + m]
                w, b = weight[c], bias[c]
                for k in range(m):
                    into[k] = (row[k] - mean[k]) * rstd[k] * w + b


__all__ = ["POSITIONS", "layer_norm_channels"]
