"""The static sm_90 report of the zoo's main CNNs in fp16, checked against what a Hopper-class kernel
needs: zero spills, one pipelined main loop (the kernel's outermost loop) per conv kernel, wgmma in every
fp16 conv tile of 64+ rows, weights (and 1x1 activations) through TMA descriptors wherever their
alignment allows, with bulk tensor copies in the PTX, and no conv layer under half a wave at batch 64
(except layers too small to fill half a wave of 64x64 tiles: fewer than 66 x 64 x 64 outputs, GoogLeNet's
narrow 1x1 branches; their split-K is capped by their few K steps), and no split-K grid past one wave of
the compiled kernel's CTAs per SM, nor one whose compiled kernel fits fewer CTAs per SM than split_k's
estimate. Run without TRITON_INTERPRET; each distinct kernel variant is compiled
once. Prints one line per failure, then a summary line.

    python tests/triton/hopper_report_check.py [resnet18 ...] [--batches 1,64,256]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.pop("TRITON_INTERPRET", None)

import convc  # noqa: E402
import convc.models  # noqa: E402
from convc.backends.triton.split_k import resident_ctas  # noqa: E402
from convc.backends.triton.static_report import static_report  # noqa: E402
from convc.backends.triton.targets import GPU_TARGETS  # noqa: E402

MODELS = ("resnet50", "vgg16", "resnet18", "alexnet", "googlenet")
CONV_KERNELS = ("conv_implicit_gemm_kernel", "gemm_kernel", "conv_direct_kernel")
MAIN_LOOP_KERNELS = ("conv_implicit_gemm_kernel", "gemm_kernel")


def tma_loads(bits: int) -> int:
    """The fewest bulk tensor copies a kernel reading `bits` operands through TMA issues: one per operand
    (the pipeliner's prologue adds one per stage)."""
    return bin(bits).count("1")


SMALL_LAYER = 66 * 64 * 64  # outputs of half a wave (132 SMs) of 64x64 tiles at one CTA per SM


def problems(report: dict, batch: int, convs: dict[str, int]) -> list[str]:
    """Every way the report falls short, one line each."""
    out = []
    waves: dict[str, float] = {}
    for k in report["kernels"]:
        where = f"{report['model']} b{batch} {k['layer']} {k['function']} {k['config']}"
        if k["spills"]:
            out.append(f"{where}: spills {k['spills']} bytes per thread")
        if k["layer"] not in convs or k["function"] not in CONV_KERNELS:
            continue
        if k["function"] in MAIN_LOOP_KERNELS and (k["pipelined_loops"], k["pipelined_depth"]) != (1, 1):
            out.append(f"{where}: {k['pipelined_loops']} pipelined loops at depth {k['pipelined_depth']}, "
                       f"wanted one main loop")
        if k["function"] in MAIN_LOOP_KERNELS and k["config"].get("BLOCK_M", 0) >= 64 and not k["wgmma"]:
            out.append(f"{where}: a {k['config']['BLOCK_M']}-row fp16 tile without wgmma")
        if k["function"] in MAIN_LOOP_KERNELS and k["config"].get("TMA", 0) != k["tma_modes"]:
            out.append(f"{where}: TMA {k['config'].get('TMA', 0)} where the operands allow {k['tma_modes']}")
        if k["config"].get("TMA") and k["tma"] < tma_loads(k["config"]["TMA"]):
            out.append(f"{where}: TMA {k['config']['TMA']} planned, {k['tma']} bulk tensor copies in the PTX")
        waves[k["layer"]] = max(waves.get(k["layer"], 0.0), k["waves"] or 0.0)
    if batch == 64:
        out += [f"{report['model']} b64 {layer}: {w:.2f} of a wave" for layer, w in waves.items()
                if w < 0.5 and convs[layer] >= SMALL_LAYER]
    return out


def split_problems(report: dict, batch: int) -> list[str]:
    """Split-K launches whose grid leaves one wave of the compiled kernel's own CTAs per SM: split_k.py
    sizes the split to fill one wave by its estimate of the tile's occupancy, and an estimate above the
    real one would start a nearly empty second wave."""
    return [f"{report['model']} b{batch} {k['layer']} {k['function']} {k['config']}: split "
            f"{k['meta']['SPLIT_K']} launches {k['ctas']} CTAs, {k['waves']:.2f} waves at {k['ctas_per_sm']} "
            f"CTAs/SM" for k in report["kernels"]
            if k["function"] in MAIN_LOOP_KERNELS and k["meta"].get("SPLIT_K", 1) > 1
            and (k["waves"] or 0) > 1]


def estimate_problems(report: dict, batch: int, channels: dict[str, int]) -> list[str]:
    """Split-K launches whose compiled kernel fits fewer CTAs per SM than split_k.resident_ctas said when
    it sized the split (`channels`: each conv's input channels per group, which decide a ragged K)."""
    out = []
    for k in report["kernels"]:
        if k["function"] not in MAIN_LOOP_KERNELS or k["meta"].get("SPLIT_K", 1) == 1:
            continue
        ragged = channels[k["layer"]] % k["config"]["BLOCK_K"] != 0
        estimate = resident_ctas(k["config"], report["dtype"], bool(k["meta"].get("GATHER_K")), ragged)
        if estimate > k["ctas_per_sm"]:
            out.append(f"{report['model']} b{batch} {k['layer']} {k['function']} {k['config']}: split-K "
                       f"estimate {estimate} CTAs per SM, compiled {k['ctas_per_sm']}")
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--batches", default="1,64,256")
    args = parser.parse_args(argv)
    target = GPU_TARGETS["sm_90"]
    failures: list[str] = []
    kernels = 0
    start = time.perf_counter()
    for name in args.models:
        for batch in (int(b) for b in args.batches.split(",")):
            net = convc.models.get(name, batch=batch, init=False)
            model = convc.compile(net, backend="triton", dtype="float16", target=target.name)
            conv_nodes = list(model.graph.nodes(("conv1d", "conv2d", "conv3d")))
            convs = {n.name: n.type.numel for n in conv_nodes}
            channels = {n.name: model.graph.node(n.inputs[0]).type.shape[1] // n.attrs["groups"]
                        for n in conv_nodes}
            report = static_report(model, target)  # type: ignore[arg-type]
            kernels += len(report["kernels"])
            failures += problems(report, batch, convs)
            failures += split_problems(report, batch)
            failures += estimate_problems(report, batch, channels)
    for line in failures:
        print("FAILED", line)
    from convc.backends.triton import aot

    print(f"checked {kernels} launches ({len(aot._COMPILED)} distinct kernels) in "
          f"{time.perf_counter() - start:.0f} s: {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
