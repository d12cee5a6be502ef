"""Winograd F(m x m, 3x3) transform matrices (Lavin & Gray 2015) and the filter transform.

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A      per (m + 2)² input tile d and 3x3 filter g

    u = transform_filters(weight, 4)      # (K, C, 3, 3) -> (36, K, C), computed in float64

Backends that run Winograd and the pass that transforms filters at compile time
(passes/winograd_weights.py) share these matrices, so the transform is the same wherever it happens.
"""
from __future__ import annotations

import numpy as np

# Bᵀ, G, Aᵀ from REFERENCE.md (Lavin & Gray), keyed by output tile size m of F(m x m, 3x3).
WINOGRAD_MATRICES: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    2: (
        np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    ),
    4: (
        np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                 np.float64),
    ),
}


def transform_filters(weight: np.ndarray, tile: int) -> np.ndarray:
    """(K, C, 3, 3) filters -> U with U[(a, b), k, c] = (G g_kc Gᵀ)[a, b], shape ((tile + 2)², K, C),
    in float64 (the caller casts once to its working dtype)."""
    g = WINOGRAD_MATRICES[tile][1]
    k, c = weight.shape[:2]
    u = np.einsum("ai,kcij,bj->abkc", g, np.asarray(weight, np.float64), g)
    return np.ascontiguousarray(u.reshape((tile + 2) ** 2, k, c))


def untransform_filters(u: np.ndarray, tile: int) -> np.ndarray:
    """The inverse of `transform_filters` (G has full column rank: g = G⁺ U G⁺ᵀ), in float64, for
    writing a transformed graph back out in standard form (ONNX export)."""
    g_pinv = np.linalg.pinv(WINOGRAD_MATRICES[tile][1])
    alpha = tile + 2
    k, c = u.shape[1:]
    tiles = np.asarray(u, np.float64).reshape(alpha, alpha, k, c)
    return np.einsum("ia,abkc,jb->kcij", g_pinv, tiles, g_pinv)
