"""Compile-time parameter packing: the layouts the kernels read. Pure layout changes cast once, straight to
float32 (the same rounding as through float64: transposes do no arithmetic); folds compute in float64.

    pack_conv_gemm(w, groups)   (O, C/g, *k)  ->  [g, KD, KH, KW, C/g, O/g]   (the GEMM's K x N per group)
    pack_conv_direct(w)         (O, C/g, *k)  ->  [KD, KH, KW, C/g, O]
    pack_linear(w)              (O, K)        ->  [K, O]
    channels_last_columns(w, (C, H, W))   (O, C*H*W) in (c, h, w) order  ->  (O, H*W*C) in (h, w, c) order
"""
from __future__ import annotations

import numpy as np
import torch


def _to_torch(a: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    # bfloat16 has no NumPy type, so every dtype goes through float32 on its way to the device. Always a
    # copy: a packed tensor must not share memory with the graph's parameter arrays.
    t = torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))
    return t.to(device=device, dtype=dtype).contiguous()


def _weight5d(w: np.ndarray) -> np.ndarray:
    """(O, Cg, *k) with 1..3 kernel axes -> (O, Cg, KD, KH, KW)."""
    w = np.asarray(w)
    return w.reshape(w.shape[:2] + (1,) * (5 - w.ndim) + w.shape[2:])


def pack_conv_gemm(w: np.ndarray, groups: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    w5 = _weight5d(w)
    o, cg, kd, kh, kw = w5.shape
    og = o // groups
    packed = w5.reshape(groups, og, cg, kd, kh, kw).transpose(0, 3, 4, 5, 2, 1)
    return _to_torch(packed, dtype, device)


def pack_conv_direct(w: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    return _to_torch(_weight5d(w).transpose(2, 3, 4, 1, 0), dtype, device)


def pack_linear(w: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    return _to_torch(np.asarray(w).T, dtype, device)


def channels_last_columns(w: np.ndarray, source: tuple[int, ...]) -> np.ndarray:
    """A linear weight reordered to read a flattened (C, *spatial) map in channels-last feature order."""
    w = np.asarray(w)
    channels, positions = source[0], int(np.prod(source[1:]))
    out = w.shape[0]
    return w.reshape(out, channels, positions).transpose(0, 2, 1).reshape(out, channels * positions)


def pack_vector(v: np.ndarray, device: str) -> torch.Tensor:
    """Biases, scales and shifts stay fp32: they are added to the fp32 accumulator."""
    return _to_torch(np.asarray(v).reshape(-1), torch.float32, device)


def batch_norm_scale_shift(weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray,
                           eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as y = x * scale + shift, computed in float64."""
    scale = np.asarray(weight, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    shift = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * scale
    return scale, shift


def channels_last_bias(bias: np.ndarray) -> np.ndarray:
    """bias_add's (C, *spatial) bias -> (*spatial, C), the order of the pixel matrix."""
    b = np.asarray(bias, np.float64)
    return np.moveaxis(b, 0, -1) if b.ndim > 1 else b
