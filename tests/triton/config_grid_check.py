"""Compiles, for sm_90 and without a GPU, every configuration the planner or the tuner can give the direct
conv kernel and the window pooling kernel, and fails on any spill. aot_compile.py compiles one
configuration per kernel; these two kernels spilled under triton 3.6 (the GPU machine's version) at
configurations that one graph never reaches, so they get the whole space here:

- conv_direct_kernel: every tile of autotune's conv_direct list (and with --grid, 32-256 rows x 16-64
  channels x 2/4/8 warps, reported but not failed), each with no epilogue, a relu, and the heaviest
  epilogue (two residual adds and a leaky relu), in fp16 and fp32;
- window_pool_kernel: max, average counting the padding and average not counting it, at the tile that
  pooling.py picks for 1 to 128 channels, in fp16 and fp32.

Run as a script, without TRITON_INTERPRET; prints one line per spilling variant and a final
"checked N variants, P problems". CI runs it with the pinned triton; run it with the GPU machine's too:

    python tests/triton/config_grid_check.py [--grid]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any

os.environ.pop("TRITON_INTERPRET", None)

import convc  # noqa: E402
from convc.backends.triton import autotune  # noqa: E402
from convc.backends.triton.aot import compile_launch, kernel_stats  # noqa: E402
from convc.backends.triton.launch import Launch  # noqa: E402
from convc.backends.triton.targets import GPU_TARGETS  # noqa: E402
from convc.dsl import Network  # noqa: E402

DTYPES = ("float16", "float32")
EPILOGUES: dict[str, tuple[tuple, ...]] = {
    "none": (), "relu": (("relu",),),
    "add-relu-add-leaky": (("add",), ("relu",), ("add",), ("leaky_relu", 0.1))}
POOL_CHANNELS = (1, 3, 8, 16, 32, 64, 128)  # pooling.py's tile: min(64, channels) wide, 2048 elements
WIDE_GRID = [(bm, bn, w) for bm in (32, 64, 128, 256) for bn in (16, 32, 64) for w in (2, 4, 8)]


def grouped_conv_graph(epilogue: tuple[tuple, ...]) -> Network:
    """A 3x3 conv with 4 channels per group (ResNeXt-like), pinned to the direct kernel, with `epilogue`
    fused as fuse_epilogue would (its residual operands are 1x1 convs of the input)."""
    net = Network("direct", seed=0)
    x = net.input((2, 32, 10, 10))
    c = net.conv2d(x, 64, 3, padding=1, groups=8, name="c")
    adds = sum(1 for step in epilogue if step[0] == "add")
    residuals = [net.conv2d(x, 64, 1, name=f"r{i}").name for i in range(adds)]
    node = net.graph.node(c.name)
    net.graph.replace_node(node.replace(inputs=(node.inputs[0], *residuals, *node.inputs[1:]),
                                        attrs={**node.attrs, "epilogue": epilogue, "algo": "direct"}))
    net.output(c)
    return net


def pool_graph(channels: int) -> Network:
    """Max and both kinds of average pooling over a `channels`-wide input (3x3, stride 2, ceil mode)."""
    net = Network("pool", seed=0)
    x = net.input((2, channels, 9, 9))
    net.output(net.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
               net.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
               net.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False))
    return net


def launches_of(net: Network, dtype: str, kernel: str) -> list[Launch]:
    model = convc.compile(net, backend="triton", dtype=dtype, opt_level=0, target="sm_90")
    return [launch for launch in model.launches if launch.name == kernel]


def variants(wide_grid: bool) -> Iterator[tuple[str, Launch, bool]]:
    """(description, launch, whether a spill fails the check) for every variant to compile."""
    planner_tiles = {(c["BLOCK_M"], c["BLOCK_N"], c["num_warps"]) for n in (16, 32, 64, 128)
                     for c in autotune.candidate_configs("conv_direct", (4096, n, 36))}
    tiles = sorted(planner_tiles | (set(WIDE_GRID) if wide_grid else set()))
    for dtype in DTYPES:
        for name, epilogue in EPILOGUES.items():
            [launch] = launches_of(grouped_conv_graph(epilogue), dtype, "conv_direct_kernel")
            for bm, bn, warps in tiles:
                config: dict[str, Any] = dict(BLOCK_M=bm, BLOCK_N=bn, num_warps=warps, num_stages=1)
                yield (f"conv_direct {dtype} {name} {bm}x{bn} w{warps}", launch.with_config(config),
                       (bm, bn, warps) in planner_tiles)
        for channels in POOL_CHANNELS:
            for launch in launches_of(pool_graph(channels), dtype, "window_pool_kernel"):
                yield f"window_pool {dtype} C={channels} {launch.node} {launch.config}", launch, True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="store_true", help="also report a wider grid of direct tiles")
    args = parser.parse_args(argv)
    target = GPU_TARGETS["sm_90"]
    checked = problems = spilled_outside = 0
    for where, launch, required in variants(args.grid):
        stats = kernel_stats(compile_launch(launch, target))
        checked += 1
        if stats.spills:
            label = "PROBLEM" if required else "outside the planner:"
            print(f"{label} {where}: {stats.registers} registers, {stats.spills} bytes spilled")
            problems += required
            spilled_outside += not required
    extra = f" ({spilled_outside} spilling tiles outside the planner's lists)" if args.grid else ""
    print(f"checked {checked} variants, {problems} problems{extra}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
