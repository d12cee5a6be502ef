"""The Winograd transform matrices of F(2x2,3x3) and F(4x4,3x3) written out as adds (Lavin & Gray 2015), as
jit helpers on tuples of same-shaped fp32 tensors (one tensor per tile position, each holding a block of
(tile, channel) rows).

A 2-D transform X -> Mᵀ X M is two 1-D passes: Mᵀ applied to each column of the tile, then to each row.
Written with the matrices' shared terms, one 1-D pass costs, in fp32 operations (an FMA counts once):

| pass | F(2x2): t = 4 | F(4x4): t = 6 |
| --- | --- | --- |
| input, Bᵀ d (t values -> t) | 4 | 12 |
| output, Aᵀ m (t values -> m) | 4 | 10 |

so a tile costs 2t passes in (32 / 144 operations per tile and channel) and t + m passes out (24 / 100
per tile and output channel), against t⁴ (256 / 1,296) for the dense kron(Bᵀ, Bᵀ) product, 4,096 when
padded to a 64-wide tl.dot. passes/conv_cost.py charges these counts (WINOGRAD_TRANSFORM_OPS).

    v = input_pass(column, TILE_OUT)   # column: t tensors -> t tensors (Bᵀ applied)
    y = output_pass(row, TILE_OUT)     # row: t tensors -> m tensors (Aᵀ applied)
"""
from __future__ import annotations

import triton
import triton.language as tl

# fp32 operations per tile of the helpers below (the table above): (input transform per input channel,
# output transform per output channel), 2t and t + m one-dimensional passes. The cost model charges the
# same numbers (passes/conv_cost.py, WINOGRAD_TRANSFORM_OPS); tests/triton/winograd_ops_check.py counts
# them in the compiled kernels' PTX.
TRANSFORM_OPS = {2: (2 * 4 * 4, (4 + 2) * 4), 4: (2 * 6 * 12, (6 + 4) * 10)}

# The matrices as the kernels apply them (rows of Bᵀ and Aᵀ), kept for the host side: the filters'
# G is applied at compile time in float64 (conv_winograd.WinogradPlan.transform_filters) and the tests
# check the helpers below against these.
B_T = {2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
       4: ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
           (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))}
A_T = {2: ((1, 1, 1, 0), (0, 1, -1, -1)),
       4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))}
G = {2: ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),
     4: ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
         (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))}


@triton.jit
def _input_pass_2(d):
    """Bᵀ d for F(2x2): 4 operations."""
    return d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]


@triton.jit
def _input_pass_4(d):
    """Bᵀ d for F(4x4): 12 operations. Rows 1/2 and 3/4 of Bᵀ share their even and odd halves."""
    even_4 = d[4] - 4.0 * d[2]  # rows 1 and 2: d4 - 4 d2 ± (d3 - 4 d1)
    odd_4 = d[3] - 4.0 * d[1]
    even_1 = d[4] - d[2]  # rows 3 and 4: d4 - d2 ± 2 (d3 - d1)
    odd_1 = d[3] - d[1]
    return (4.0 * d[0] + (d[4] - 5.0 * d[2]), even_4 + odd_4, even_4 - odd_4,
            even_1 + 2.0 * odd_1, even_1 - 2.0 * odd_1, 4.0 * d[1] + (d[5] - 5.0 * d[3]))


@triton.jit
def input_pass(d, TILE_OUT: tl.constexpr):
    """Bᵀ applied to one line of a t x t input tile: a tuple of t tensors -> a tuple of t tensors."""
    if TILE_OUT == 2:
        return _input_pass_2(d)
    else:
        return _input_pass_4(d)


@triton.jit
def _output_pass_2(m):
    """Aᵀ m for F(2x2): 4 operations."""
    return m[0] + m[1] + m[2], m[1] - m[2] - m[3]


@triton.jit
def _output_pass_4(m):
    """Aᵀ m for F(4x4): 10 operations on the sums and differences of positions 1/2 and 3/4."""
    sum_12 = m[1] + m[2]
    diff_12 = m[1] - m[2]
    sum_34 = m[3] + m[4]
    diff_34 = m[3] - m[4]
    return (m[0] + sum_12 + sum_34, diff_12 + 2.0 * diff_34, sum_12 + 4.0 * sum_34,
            diff_12 + 8.0 * diff_34 + m[5])


@triton.jit
def output_pass(m, TILE_OUT: tl.constexpr):
    """Aᵀ applied to one line of a t x t product tile: a tuple of t tensors -> a tuple of m tensors."""
    if TILE_OUT == 2:
        return _output_pass_2(m)
    else:
        return _output_pass_4(m)


@triton.jit
def column(tile, j: tl.constexpr, TILE_IN: tl.constexpr):
    """Element j of each of the t tuples in `tile` (a tuple of lines): the tile's j-th column."""
    if TILE_IN == 4:
        return tile[0][j], tile[1][j], tile[2][j], tile[3][j]
    else:
        return tile[0][j], tile[1][j], tile[2][j], tile[3][j], tile[4][j], tile[5][j]
