"""Compiles every kernel the Triton backend emits for one small graph with the real Triton compiler for
sm_90 (front end, MLIR passes, ptxas) without a GPU: the interpreter runs kernels as Python and would
not notice code the compiler rejects. Run as a script, without TRITON_INTERPRET; prints one line per
failure and a final "compiled N of N".

    python tests/triton/aot_compile.py float16
"""
from __future__ import annotations

import os
import sys
from typing import Any

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import convc  # noqa: E402
import convc.backends.triton.module as module  # noqa: E402
from convc.backends.triton.launch import Launch  # noqa: E402
from convc.dsl import Network  # noqa: E402

POINTER = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}
LAUNCH_OPTIONS = ("num_warps", "num_stages")


def signature(launch: Launch) -> tuple[dict[str, str], dict[str, Any]]:
    names = launch.kernel.arg_names
    sig: dict[str, str] = {}
    for name, arg in zip(names, launch.args):
        if isinstance(arg, torch.Tensor):
            sig[name] = POINTER[arg.dtype]
        else:
            sig[name] = "fp32" if isinstance(arg, float) else "i32"
    values = {**launch.meta, **{k: v for k, v in launch.config.items() if k not in LAUNCH_OPTIONS}}
    consts = {name: values[name] for name in names[len(launch.args):]}
    sig.update({name: "constexpr" for name in consts})
    return sig, consts


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
    module._resolve_device = lambda device: "cpu"  # build the launches without a device; nothing runs
    target = GPUTarget("cuda", 90, 32)
    failures, seen = 0, set()
    for algo in ("implicit_gemm", "im2col", "winograd_2x2", "winograd_4x4", "direct"):
        net = every_kernel_graph()
        c = net.graph.node("c")
        net.graph.replace_node(c.replace(attrs={**c.attrs, "algo": algo}))
        model = convc.compile(net, backend="triton", dtype=dtype, opt_level=0, autotune=False)
        for launch in model.launches:
            sig, consts = signature(launch)
            key = (launch.name, tuple(sorted(consts.items())), tuple(sorted(sig.items())))
            if key in seen:
                continue
            seen.add(key)
            options = {k: launch.config[k] for k in LAUNCH_OPTIONS if k in launch.config}
            try:
                triton.compile(ASTSource(launch.kernel, sig, consts), target=target, options=options)
            except Exception as e:  # report every failure, not just the first
                failures += 1
                print(f"FAILED {launch.node} {launch.name} {consts}: {type(e).__name__}: {e}"[:2000])
    print(f"compiled {len(seen) - failures} of {len(seen)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "float16"))
