"""Compiles every kernel the Triton backend emits for one small graph with the real Triton compiler for
sm_90 (front end, MLIR passes, ptxas) without a GPU: the interpreter runs kernels as Python and would
not notice code the compiler rejects. Each variant's static report must show no spills and registers
within its kernel's bound, every @triton.jit `*_kernel` of backends/triton must have been compiled, and
in fp16 the GEMM kernels' TMA variants must issue bulk tensor copies.
Run as a script, without TRITON_INTERPRET; prints one line per problem, one per kernel with its largest
register count, and a final "compiled N of N, P problems".

    python tests/triton/aot_compile.py float16
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys

os.environ.pop("TRITON_INTERPRET", None)

import convc  # noqa: E402
import convc.backends.triton as triton_backend  # noqa: E402
from convc.backends.triton.aot import compile_launch, kernel_stats, variant_key  # noqa: E402
from convc.backends.triton.targets import GPU_TARGETS  # noqa: E402
from convc.dsl import Network  # noqa: E402

# Registers per thread at these small configurations (measured with triton 3.8, 2026-12-01: 24-80; fp32
# layer norm 122): 128 keeps 4 CTAs of 4 warps on an SM; layer norm, holding a [BLOCK, 32+] fp32 tile
# across a loop, may take up to 168 (3 CTAs). (The Winograd output transform needed 123 while it was a
# dense tl.dot; written out as adds it takes 40.)
REGISTER_BOUND = 128
REGISTER_BOUNDS = {"layer_norm_kernel": 168}
# Kernels whose fp16 launches read operands through TMA descriptors by default (the graph's channel counts
# meet the alignment rules): each such variant must show bulk tensor copies in its PTX.
TMA_KERNELS = {"gemm_kernel", "conv_implicit_gemm_kernel"}


def every_kernel_graph() -> Network:
    """One graph that makes the backend emit each kernel family (and each conv algorithm via `algo`)."""
    net = Network("aot", seed=0)
    x = net.input((2, 16, 10, 10))
    res = net.conv2d(x, 32, 1, name="res")
    res2 = net.conv2d(x, 32, 1, name="res2")
    c = net.conv2d(x, 32, 3, padding=1, name="c")
    node = net.graph.node("c")  # fused as fuse_epilogue would: (x, residuals, weight, bias)
    epilogue = (("add",), ("relu",), ("add",), ("leaky_relu", 0.1))  # both residual operands
    net.graph.replace_node(node.replace(inputs=(node.inputs[0], res.name, res2.name, *node.inputs[1:]),
                                        attrs={**node.attrs, "epilogue": epilogue}))
    y = net.conv2d(c, 32, 3, padding=1, groups=32, name="dw")
    z = net.concat([net.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True),
                    net.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)],
                   axis=1)
    z = net.softmax(net.bias_add(net.maxout(net.lrn(net.batch_norm(z)), 2)), axis=2)
    f = net.linear(net.flatten(z), 10)
    # Every epilogue step code as a standalone elementwise launch (at -O0 nothing fuses).
    steps = net.gelu(net.elu(net.tanh(res)), approximate="tanh")
    steps = net.silu(net.hardsigmoid(net.hardswish(net.clip(net.gelu(steps), 0.0, 6.0))))
    scaled = net.mul(y, net.adaptive_avg_pool(y, 1))  # a squeeze-excitation broadcast
    # Three channels: the implicit GEMM's flat (position, channel) K gather.
    rgb = net.conv2d(net.input((2, 3, 10, 10), name="image"), 16, 3, padding=1, name="rgb")
    net.output(net.softmax(f), net.global_avg_pool(z), net.global_max_pool(z), net.concat([z, z], axis=3),
               net.sigmoid(res), steps, net.layer_norm(scaled), net.adaptive_avg_pool(y, (3, 4)), rgb)
    return net


def kernel_names() -> set[str]:
    """Every @triton.jit function named *_kernel in the backend's modules (helpers are inlined into them)."""
    names = set()
    for info in pkgutil.iter_modules(triton_backend.__path__):
        module = importlib.import_module(f"{triton_backend.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.endswith("_kernel") and hasattr(value, "fn") and value.__module__ == module.__name__:
                names.add(name)
    return names


def main(dtype: str) -> int:
    target = GPU_TARGETS["sm_90"]
    problems, seen = 0, set()
    registers: dict[str, int] = {}
    with_tma: set[str] = set()
    spilled: set[str] = set()
    for algo in ("implicit_gemm", "im2col", "winograd_2x2", "winograd_4x4", "direct"):
        net = every_kernel_graph()
        c = net.graph.node("c")
        net.graph.replace_node(c.replace(attrs={**c.attrs, "algo": algo}))
        model = convc.compile(net, backend="triton", dtype=dtype, opt_level=0, target=target.name)
        for launch in model.launches:
            key = variant_key(launch, target)
            if key in seen:
                continue
            seen.add(key)
            try:
                stats = kernel_stats(compile_launch(launch, target))
            except Exception as e:  # report every failure, not just the first
                problems += 1
                print(f"FAILED {launch.node} {launch.name} {launch.meta} {launch.config}: {type(e).__name__}: "
                      f"{e}"[:2000])
                continue
            registers[launch.name] = max(registers.get(launch.name, 0), stats.registers)
            if launch.config.get("TMA"):
                with_tma.add(launch.name)
                if not stats.tma:
                    problems += 1
                    print(f"PROBLEM {launch.node} {launch.name} {launch.config}: TMA asked for, no bulk tensor copy")
            bound = REGISTER_BOUNDS.get(launch.name, REGISTER_BOUND)
            if stats.spills:
                spilled.add(launch.name)
            if stats.spills or stats.registers > bound:
                problems += 1
                print(f"PROBLEM {launch.node} {launch.name} {launch.config}: {stats.registers} registers "
                      f"(bound {bound}), {stats.spills} bytes spilled")
    for name in sorted(kernel_names() - set(registers)):
        problems += 1
        print(f"PROBLEM {name}: no launch of this graph compiled it; extend every_kernel_graph")
    if dtype != "float32":
        for name in sorted(TMA_KERNELS - with_tma):
            problems += 1
            print(f"PROBLEM {name}: no {dtype} launch of this graph read its operands through TMA descriptors")
    for name, count in sorted(registers.items()):
        print(f"{name}: up to {count} registers, {'SPILLS' if name in spilled else 'no spills'}")
    print(f"compiled {len(seen)} of {len(seen)}, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "float16"))
