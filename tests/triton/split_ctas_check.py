"""Compiles for sm_90 (no GPU) the split-K variant of every tile the planner or tuner can give the GEMM
kernels and prints how many CTAs of each fit on one SM, the fewest over the kernels sharing the tile
(implicit GEMM and plain GEMM, with and without TMA; the flat RGB gather). split_k.py sizes a split to
fill one wave with this number, so it must be the compiled kernels' own: an estimate above it starts a
nearly empty second wave, one below it splits less than it could. split_k.SM90_RESIDENT_CTAS holds the
fewest over triton 3.6 (the GPU machine's), 3.8 (CI's) and 3.9, which differ by one CTA on a few tiles.
`--check` compares it with this triton's compiles: an entry above them fails, one below is listed (CI
runs it with the pinned triton; run it with the GPU machine's too). Run without TRITON_INTERPRET.

    python tests/triton/split_ctas_check.py [--check]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

os.environ.pop("TRITON_INTERPRET", None)

import convc  # noqa: E402
from convc.backends.triton import autotune, split_k  # noqa: E402
from convc.backends.triton.aot import compile_launch, kernel_stats  # noqa: E402
from convc.backends.triton.launch import Launch  # noqa: E402
from convc.backends.triton.targets import GPU_TARGETS  # noqa: E402
from convc.dsl import Network  # noqa: E402

GEMM_KERNELS = ("gemm_kernel", "conv_implicit_gemm_kernel")
FALLBACK = (16, 16, 16, 4, 2)  # candidate_configs' tile when no listed tile fits the problem
# (kernel kind, input shape, out channels, kernel, stride): layers whose default tiles split K. Channel
# counts that fill every K block and ones that leave the last one ragged (200 and 488: not multiples of 16;
# 208 and 464: GoogLeNet-like) compile to different pipelines (a 64x64x32 5-stage implicit GEMM: 5 CTAs
# per SM at 128 channels, 4 at 112), so split_k keys them apart.
LAYERS = [("gemm", (1, 1024, 7, 7), 256, 1, 1), ("gemm", (1, 488, 7, 7), 192, 1, 1),
          ("gemm", (1, 464, 7, 7), 192, 1, 1), ("conv_implicit_gemm", (1, 512, 7, 7), 512, 3, 1),
          ("conv_implicit_gemm", (1, 200, 7, 7), 224, 3, 1),
          ("conv_implicit_gemm", (1, 208, 7, 7), 224, 3, 1),
          ("gather", (1, 3, 32, 32), 64, 11, 4)]


def split_launch(layer: tuple[Any, ...], dtype: str) -> Launch:
    """The main launch of one of LAYERS, compiled for sm_90: its default tile splits K."""
    kind, shape, out, kernel, stride = layer
    net = Network("split", seed=0)
    net.output(net.conv2d(net.input(shape), out, kernel, stride=stride, padding=kernel // 2, name="c"))
    node = net.graph.node("c")
    net.graph.replace_node(node.replace(attrs={**node.attrs, "algo": "implicit_gemm"}))
    model = convc.compile(net, backend="triton", dtype=dtype, opt_level=0, target="sm_90")
    [main] = [launch for launch in model.launches if launch.name in GEMM_KERNELS]
    assert main.meta.get("SPLIT_K", 1) > 1, f"{kind} {dtype}: the probe layer does not split ({main.config})"
    return main


def tiles(kind: str, dtype: str) -> list[tuple[int, int, int, int, int]]:
    return [*autotune._tiles(kind, dtype, kind == "gather"), FALLBACK]


def variants() -> Iterator[tuple[tuple[Any, ...], Launch]]:
    """(estimate key, split-K launch) for every tile, kernel kind, dtype class and TMA choice."""
    for dtype in ("float16", "float32"):
        for layer in LAYERS:
            kind, main = layer[0], split_launch(layer, dtype)
            k_extent = layer[1][1] * (layer[3] ** 2 if kind == "gather" else 1)
            for bm, bn, bk, warps, stages in tiles(kind, dtype):
                tile = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": warps, "num_stages": stages}
                key = split_k.estimate_key(tile, dtype, kind == "gather", k_extent % bk != 0)
                for tma in sorted({0, main.tma if dtype != "float32" else 0}):
                    yield key, replace(main, config={**tile, "TMA": tma})


def measured() -> dict[tuple[Any, ...], int]:
    target = GPU_TARGETS["sm_90"]
    table: dict[tuple[Any, ...], int] = {}
    for key, launch in variants():
        stats = kernel_stats(compile_launch(launch, target))
        ctas = target.ctas_per_sm(stats.registers, stats.num_warps, stats.shared_memory)
        table[key] = min(table.get(key, ctas), ctas)
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with split_k.SM90_RESIDENT_CTAS")
    args = parser.parse_args(argv)
    table = measured()
    for key in sorted(table):
        print(f"    {key!r}: {table[key]},".replace("'", '"'))
    if not args.check:
        return 0
    expected = split_k.SM90_RESIDENT_CTAS
    problems = [f"PROBLEM {key}: not in split_k's table" for key in sorted(table) if key not in expected]
    problems += [f"PROBLEM {key}: split_k says {expected[key]}, above this triton's compiled {table[key]}"
                 for key in sorted(table) if expected.get(key, 0) > table[key]]
    below = [key for key in sorted(table) if expected.get(key, table[key]) < table[key]]
    for key in below:
        print(f"below {key}: split_k says {expected[key]} (another triton's), this triton's {table[key]}")
    problems += [f"PROBLEM {key}: in split_k's table, not a planner tile"
                 for key in expected if key not in table]
    print("\n".join(problems))
    print(f"checked {len(table)} tiles, {len(below)} below this triton's count, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
