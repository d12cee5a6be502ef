"""Per-layer smoke test of the Triton conv kernels against torch: each distinct conv layer of ResNet-50 and
VGG-16, compiled alone with tuning off, its error against torch in float64 and its time against torch's
own conv (cuDNN, channels-last) in the same dtype. One JSON line per layer, written as it finishes, so a
run cut short by its time budget keeps every finished row. Where the default plan reads operands through
TMA descriptors (`tma`: the config's bits, backends/triton/tma.py), the row also times and checks the same
tiles on the pointer path (`triton_ms_no_tma`, `rel_err_no_tma`): TMA's gain, layer by layer.

    python bench/gpu_smoke.py OUT.jsonl [--batch 64] [--dtype float16] [--models resnet50,vgg16] [--dry]

--dry: the CPU interpreter, tiny inputs, one timed run (checks the script, not the kernels' speed).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

import convc
import convc.models
from convc.dsl import Network
from convc.numerics import budget, rel_err


def conv_layers(model: str, batch: int, size: int) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Distinct conv layers (shape, kernel, stride, padding, out channels) -> the first layer's name."""
    net = convc.models.get(model, batch=batch, input_size=size, init=False)
    g = net.graph
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for node in g.nodes("conv2d"):
        a = node.attrs
        x = g.node(node.inputs[0]).type.shape
        key = (x, a["out_channels"], tuple(a["kernel"]), tuple(a["stride"]), tuple(p[0] for p in a["padding"]),
               a["groups"])
        out.setdefault(key, {"model": model, "layer": node.name})
    return out


def time_ms(fn: Any, cuda: bool, repeat: int) -> float:
    fn()
    if cuda:
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=10, rep=repeat * 5, return_mode="median"))
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def smoke_one(key: tuple[Any, ...], dtype: str, device: str, repeat: int) -> dict[str, Any]:
    shape, out_channels, kernel, stride, pad, groups = key
    net = Network("layer", seed=1)
    x = net.input(shape)
    net.output(net.conv2d(x, out_channels, kernel, stride=stride, padding=pad, groups=groups, name="conv"))
    tdtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    rng = np.random.default_rng(0)
    xs = rng.standard_normal(shape).astype(np.float32)
    w = torch.from_numpy(np.asarray(net.graph.params["conv.weight"], np.float64))
    b = torch.from_numpy(np.asarray(net.graph.params["conv.bias"], np.float64))
    ref = torch.nn.functional.conv2d(torch.from_numpy(xs.astype(np.float64)), w, b, stride, pad, 1, groups)
    model = convc.compile(net, backend="triton", dtype=dtype, device=device, autotune=False)
    xt = torch.from_numpy(xs).to(device=device, dtype=tdtype)
    out = model(xt)
    err = rel_err(out.float().cpu().numpy(), ref.numpy())
    row: dict[str, Any] = {"shape": list(shape), "out_channels": out_channels, "kernel": list(kernel),
                           "stride": list(stride), "padding": list(pad), "groups": groups, "dtype": dtype,
                           "algo": model.graph.node("conv").attrs.get("algo"), "rel_err": err,
                           "budget": budget(dtype), "ok": err <= budget(dtype)}
    cuda = device == "cuda"
    row["triton_ms"] = time_ms(lambda: model(xt), cuda, repeat)
    xc = xt.to(memory_format=torch.channels_last) if cuda else xt
    wt, bt = w.to(device=device, dtype=tdtype), b.to(device=device, dtype=tdtype)
    if cuda:
        wt = wt.to(memory_format=torch.channels_last)
    row["torch_ms"] = time_ms(lambda: torch.nn.functional.conv2d(xc, wt, bt, stride, pad, 1, groups), cuda, repeat)
    row["speedup_vs_torch"] = row["torch_ms"] / row["triton_ms"]
    row.update(tma_ab(model, xt, ref.numpy(), cuda, repeat))
    row["ok"] = row["ok"] and row.get("rel_err_no_tma", 0.0) <= budget(dtype)
    macs = math_prod(out.shape) * (shape[1] // groups) * kernel[0] * kernel[1]
    row["tflops"] = 2 * macs / (row["triton_ms"] * 1e-3) / 1e12
    return row


def tma_ab(model: Any, xt: torch.Tensor, ref: np.ndarray, cuda: bool, repeat: int) -> dict[str, Any]:
    """{"tma": bits} of the model's launches, and when some are set, the error and time of the same tiles
    with TMA off (the launches are restored afterwards)."""
    variant = next(iter(model.variants.values()))
    bits = max((int(launch.config.get("TMA", 0)) for launch in variant.launches), default=0)
    if not bits:
        return {"tma": 0}
    with_tma = variant.launches
    variant.launches = [launch.with_config({**launch.config, "TMA": 0}) if "TMA" in launch.config else launch
                        for launch in with_tma]
    try:
        err = rel_err(model(xt).float().cpu().numpy(), ref)
        return {"tma": bits, "rel_err_no_tma": err,
                "triton_ms_no_tma": time_ms(lambda: model(xt), cuda, repeat)}
    finally:
        variant.launches = with_tma


def math_prod(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dtype", default="float16")
    p.add_argument("--models", default="resnet50,vgg16")
    p.add_argument("--dry", action="store_true")
    args = p.parse_args(argv)
    device = "cpu" if args.dry else "cuda"
    batch, size = (1, 32) if args.dry else (args.batch, 224)
    layers: dict[tuple[Any, ...], dict[str, Any]] = {}
    for model in args.models.split(","):
        layers.update({k: v for k, v in conv_layers(model, batch, size).items() if k not in layers})
    if args.dry:
        layers = dict(list(layers.items())[:3])
    failed = 0
    with open(args.out, "a") as f:
        for key, where in layers.items():
            try:
                row = {**where, **smoke_one(key, args.dtype, device, repeat=1 if args.dry else 20)}
            except Exception as e:  # a layer that fails is a row, not the end of the smoke test
                row = {**where, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
            failed += not row.get("ok", False)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(json.dumps(row), flush=True)
    print(f"smoke: {len(layers)} layers, {failed} failed or wrong")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
