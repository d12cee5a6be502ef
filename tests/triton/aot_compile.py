"""Compiles every kernel the Triton backend emits for one small graph with the real Triton compiler for
sm_90 (front end, MLIR passes, ptxas) without a GPU: the interpreter runs kernels as Python and would
not notice code the compiler rejects. Run as a script, without TRITON_INTERPRET; prints one line per
failure and a final "compiled N of N".

    python tests/triton/aot_compile.py float16
"""
from __future__ import annotations

import os
import sys

os.environ.pop("TRITON_INTERPRET", None)

import convc  # noqa: E402
from convc.backends.triton.aot import compile_launch, variant_key  # noqa: E402
from convc.backends.triton.targets import GPU_TARGETS  # noqa: E402
from convc.dsl import Network  # noqa: E402

def every_kernel_graph() -> Network:
    """One graph that makes the backend emit each kernel family (and each conv algorithm via `algo`)."""
    net = Network("aot", seed=0)
    x = net.input((2, 16, 10, 10))
    res = net.conv2d(x, 32, 1, name="res")
    c = net.conv2d(x, 32, 3, padding=1, name="c")
    node = net.graph.node("c")  # fused as fuse_epilogue would: (x, residual, weight, bias)
    net.graph.replace_node(node.replace(inputs=(node.inputs[0], res.name, *node.inputs[1:]),
                                        attrs={**node.attrs, "epilogue": (("add",), ("relu",), ("leaky_relu", 0.1))}))
    y = net.conv2d(c, 32, 3, padding=1, groups=32, name="dw")
    z = net.concat([net.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True),
                    net.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)],
                   axis=1)
    z = net.softmax(net.bias_add(net.maxout(net.lrn(net.batch_norm(z)), 2)), axis=2)
    f = net.linear(net.flatten(z), 10)
    net.output(net.softmax(f), net.global_avg_pool(z), net.global_max_pool(z), net.concat([z, z], axis=3),
               net.sigmoid(res))
    return net


def main(dtype: str) -> int:
    target = GPU_TARGETS["sm_90"]
    failures, seen = 0, set()
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
                compile_launch(launch, target)
            except Exception as e:  # report every failure, not just the first
                failures += 1
                print(f"FAILED {launch.node} {launch.name} {launch.meta} {launch.config}: {type(e).__name__}: "
                      f"{e}"[:2000])
    print(f"compiled {len(seen) - failures} of {len(seen)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "float16"))
