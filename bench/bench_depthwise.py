"""Depthwise conv layers of MobileNet v2, EfficientNet and ConvNeXt, 1 thread, batch 1, float32: the
register-blocked kernel (conv_depthwise_simd.py, what runs), the earlier compiled one
(conv_depthwise_jit.py), the NumPy kernels (conv_depthwise.py), each called directly, and torch eager,
each with the layer's bias and activation, alternating rounds, medians in ms.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/bench_depthwise.py [--rounds 21] [--dtype float32]
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from bench_cpu_baselines import alternate  # alternating rounds, medians (same folder)
from convc.backends.numpy_ref import conv_depthwise as depthwise_module
from convc.backends.numpy_ref.conv_depthwise import conv_depthwise

import convc
from convc.benchmark import set_cpu_threads
from convc.device_profiles import cpu_name

# (channels, input size, kernel, stride, activation): the distinct depthwise layers of the zoo's families
LAYERS = [
    (32, 112, 3, 1, "relu6"), (96, 112, 3, 2, "relu6"), (144, 56, 3, 1, "relu6"), (144, 56, 3, 2, "relu6"),
    (192, 28, 3, 1, "relu6"), (384, 14, 3, 1, "relu6"), (960, 7, 3, 1, "relu6"),
    (240, 28, 5, 1, "silu"), (672, 14, 5, 1, "silu"), (1152, 7, 5, 1, "silu"), (672, 14, 5, 2, "silu"),
    (96, 56, 7, 1, None), (192, 28, 7, 1, None), (384, 14, 7, 1, None), (768, 7, 7, 1, None),
]
EPILOGUE = {"relu6": (("clip", 0.0, 6.0),), "silu": (("silu",),), None: ()}
TORCH_ACT = {"relu6": F.relu6, "silu": F.silu, None: lambda y: y}


def layer_runs(c: int, size: int, k: int, s: int, act: str | None, dtype: str) -> dict:
    net = convc.Network("dw", seed=0)
    x = net.input((1, c, size, size))
    net.output(net.conv2d(x, c, k, stride=s, padding=k // 2, groups=c, name="dw"))
    graph = net.graph
    node = graph["dw"]
    graph.replace_node(node.replace(attrs={**node.attrs, "algo": "depthwise", "epilogue": EPILOGUE[act]}))
    node = graph["dw"]
    xs = np.random.default_rng(0).standard_normal((1, c, size, size)).astype(dtype)
    args = [xs] + [np.asarray(graph.params[f"dw.{p}"], dtype) for p in ("weight", "bias")]
    xt, w, b = (torch.from_numpy(np.asarray(a, dtype)) for a in
                (xs, graph.params["dw.weight"], graph.params["dw.bias"]))

    def numba_run() -> np.ndarray:
        os.environ["CONVC_NUMBA"] = "1"
        depthwise_module.REGISTER_BLOCKED = True
        return conv_depthwise(node, args)

    def planes_run() -> np.ndarray:
        os.environ["CONVC_NUMBA"] = "1"
        depthwise_module.REGISTER_BLOCKED = False
        try:
            return conv_depthwise(node, args)
        finally:
            depthwise_module.REGISTER_BLOCKED = True

    def numpy_run() -> np.ndarray:
        os.environ["CONVC_NUMBA"] = "0"
        return conv_depthwise(node, args)

    def torch_run() -> np.ndarray:
        with torch.no_grad():
            return TORCH_ACT[act](F.conv2d(xt, w, b, s, k // 2, 1, c)).numpy()
    return {"numba": numba_run, "jit": planes_run, "numpy": numpy_run, "torch": torch_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    set_cpu_threads(1)
    print(f"# {cpu_name()}, 1 thread, {args.dtype}, batch 1, {args.rounds} alternating rounds, medians (ms); "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| layer (C @ size, k, stride, act) | simd | jit | numpy | torch | simd / torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for c, size, k, s, act in LAYERS:
        runs = layer_runs(c, size, k, s, act, args.dtype)
        outs = [run() for run in runs.values()]
        assert all(np.allclose(o, outs[-1], rtol=1e-4, atol=1e-4) for o in outs)
        t = {name: 1e3 * v for name, v in alternate(runs, args.rounds).items()}
        print(f"| {c} @ {size}, {k}x{k}, s{s}, {act} | {t['numba']:.3f} | {t['jit']:.3f} | "
              f"{t['numpy']:.3f} | {t['torch']:.3f} "
              f"| {t['numba'] / t['torch']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
