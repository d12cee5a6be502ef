"""Counts the fp32 arithmetic of the compiled Winograd transform kernels (sm_90 PTX, no GPU) and checks it
against winograd_transforms.TRANSFORM_OPS, the per-tile numbers the H100 cost model charges: the model
prices the kernels' real work, not a formula beside them. Also reports registers and spills.

Each kernel is compiled for a conv without bias or epilogue (nothing else computes in fp32); one thread
owns BLOCK_P / (32 * warps) rows, each one (tile, channel) pair. PTX is counted before ptxas, which may
only remove work. Run without TRITON_INTERPRET; prints one line per kernel and "N problems":

    python tests/triton/winograd_ops_check.py
"""
from __future__ import annotations

import os
import re
import sys

os.environ.pop("TRITON_INTERPRET", None)

import convc  # noqa: E402
from convc.backends.triton.aot import compile_launch, kernel_stats  # noqa: E402
from convc.backends.triton.targets import GPU_TARGETS  # noqa: E402
from convc.backends.triton.winograd_transforms import TRANSFORM_OPS  # noqa: E402
from convc.dsl import Network  # noqa: E402
from convc.passes.conv_cost import WINOGRAD_TRANSFORM_OPS  # noqa: E402

FP32_OPS = re.compile(r"^\s*(?:@!?%p\d+\s+)?(?:add|sub|mul|fma|neg)(?:\.rn|\.rz|\.rm|\.rp)?(?:\.ftz)?\.f32\b",
                      re.MULTILINE)
KERNELS = {"winograd_input_kernel": 0, "winograd_output_kernel": 1}  # index into TRANSFORM_OPS[m]


def winograd_graph(algo: str) -> Network:
    net = Network("winograd", seed=0)
    x = net.input((2, 16, 12, 12))
    y = net.conv2d(x, 32, 3, padding=1, bias=False, name="c")
    node = net.graph.node("c")
    net.graph.replace_node(node.replace(attrs={**node.attrs, "algo": algo}))
    net.output(y)
    return net


def main() -> int:
    problems = 0
    for m, algo in ((2, "winograd_2x2"), (4, "winograd_4x4")):
        if TRANSFORM_OPS[m] != WINOGRAD_TRANSFORM_OPS[m]:
            problems += 1
            print(f"PROBLEM {algo}: the kernels count {TRANSFORM_OPS[m]}, "
                  f"the cost model {WINOGRAD_TRANSFORM_OPS[m]}")
        for dtype in ("float16", "float32"):
            model = convc.compile(winograd_graph(algo), backend="triton", dtype=dtype, opt_level=0,
                                  target="sm_90")
            for launch in model.launches:
                if launch.name not in KERNELS:
                    continue
                compiled = compile_launch(launch, GPU_TARGETS["sm_90"])
                stats = kernel_stats(compiled)
                rows_per_thread = launch.config["BLOCK_P"] // (32 * launch.config["num_warps"])
                per_row = len(FP32_OPS.findall(compiled.asm["ptx"])) / rows_per_thread
                expected = TRANSFORM_OPS[m][KERNELS[launch.name]]
                print(f"{algo} {dtype} {launch.name}: {per_row:g} fp32 operations per row (charged "
                      f"{expected}), {stats.registers} registers, {stats.spills} bytes spilled")
                if per_row != expected or stats.spills:
                    problems += 1
                    print(f"PROBLEM {algo} {dtype} {launch.name}")
    print(f"{problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
