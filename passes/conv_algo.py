"""conv {algo=None}  ->  conv {algo=<the target backend's fastest applicable algorithm>}.

For each conv, the candidates are the target's algorithms (`ctx.capabilities.conv_algos`) that apply
to it: Winograd F(2x2,3x3) and F(4x4,3x3) only for a 2D 3x3 conv with stride 1, dilation 1, groups 1;
"depthwise" only where groups equal the input channels (MobileNet, EfficientNet, ConvNeXt).
At -O2 an analytical cost model (passes/conv_cost.py) picks; at -O3 each candidate is timed on the
backend itself and checked against its numerical budget (passes/conv_measure.py). The result is a
`Plan` (passes/plan.py) in `ctx.results["plan"]`, cached per layer signature so a second compile
replays it without measuring again.

Winograd mixes the pixels of a tile, so a NaN or inf input makes its whole output tile non-finite
(docs/numerics.md). The option "winograd": False (compile(..., pass_options={"choose_conv_algo":
{"winograd": False}}), the CLI's --no-winograd) leaves it out of every choice; pinning it then is an error.

The user has the last word, through the pass's options `ctx.options["choose_conv_algo"]` (what
`convc.compile(algo=..., plan=...)` and the CLI's --algo / --plan fill): "algo" ({"features.0": "direct"}
or "features.0=direct" strings) pins layers, and "plan" (a file) follows a saved plan, or writes this plan
there when the file does not exist yet. A plan file made for another model, input shapes, dtype, backend or
device is refused (PlanMismatchError), or with the option "plan_mismatch": "remeasure"
(compile(plan_mismatch="remeasure"), the CLI's --plan-mismatch remeasure) chosen again with a warning and
rewritten. A conv whose graph already names an applicable algorithm keeps it.

A backend whose only algorithm is one convc does not know (torch lists "cudnn": cuDNN or oneDNN
chooses inside) is recorded in the plan but the node's algo stays None, so the graph still runs on
the NumPy reference that numerics checks use.
"""
from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convc.device_profiles import blas_threads
from convc.errors import OptionError
from convc.ir import Graph, Node
from convc.numerics import budget
from convc.ops import CONV_ALGOS, CONV_OPS, fmt_dims
from convc.pass_manager import PassContext, convc_pass
from convc.progress import reporting_lines_to, track

from convc.passes.conv_cost import COST_MODEL_VERSION, PROFILES, WINOGRAD_TILE, ConvShape, estimate
from convc.passes.conv_cost_numpy import compiled_kernels_priced, estimate_numpy
from convc.passes.cpu_profile import NumpyProfile, calibration_enabled, numpy_profile
from convc.passes.conv_measure import measure
from convc.passes.plan import (
    LayerPlan,
    OutdatedPlanFile,
    Plan,
    PlanCache,
    load_plan_file,
    signature,
    structure_hash,
)

# GPU targets (`target="sm_90"`, the CLI's --target) and the cost profile each one's plan uses.
TARGET_PROFILES = {"sm_90": "h100", "sm_80": "a100"}
ON_PLAN_MISMATCH = ("error", "remeasure")


class PlanMismatchError(OptionError):
    """A --plan file made for another model, input shapes, dtype, backend or device."""


WINOGRAD_NEEDS = "a conv2d with a 3x3 kernel, stride 1, dilation 1 and groups 1"
DEPTHWISE_NEEDS = "groups equal to the input channels (two or more) and out_channels a multiple of them"
# ctx.options["choose_conv_algo"]: layer pins, a plan file, whether to calibrate the CPU profile (-O2 on
# NumPy), how -O3 measures (passes/conv_measure.py), and whether Winograd may be chosen
OPTIONS = ("algo", "plan", "plan_mismatch", "calibrate", "repeats", "min_rounds", "max_rounds", "budget_s",
           "progress", "winograd")


def parse_algo_pins(algo: Mapping[str, str] | Sequence[str] | str | None) -> dict[str, str]:
    """{'features.0': 'direct'} from a mapping, or from 'layer=algo' strings (the CLI's --algo)."""
    if algo is None:
        return {}
    if isinstance(algo, Mapping):
        return dict(algo)
    items = [algo] if isinstance(algo, str) else list(algo)
    out = {}
    for item in items:
        for part in item.split(","):
            layer, sep, name = part.partition("=")
            if not sep or not layer or not name:
                raise OptionError(f"--algo {part!r}: expected LAYER=ALGORITHM, e.g. features.0=direct")
            out[layer.strip()] = name.strip()
    return out


def user_choices(ctx: PassContext) -> tuple[dict[str, str], Path | None]:
    """The pinned layers and the plan file from the pass's options."""
    options: dict[str, Any] = ctx.options_of("choose_conv_algo", OPTIONS)
    plan = options.get("plan")
    return parse_algo_pins(options.get("algo")), Path(plan) if plan else None


def winograd_allowed(ctx: PassContext) -> bool:
    return bool(ctx.options_of("choose_conv_algo", OPTIONS).get("winograd", True))


def is_depthwise(node: Node, in_channels: int | None) -> bool:
    """groups == input channels (more than one: a one-channel input is an ordinary conv) and out_channels a
    multiple of them; False when the input is unknown."""
    a = node.attrs
    return (in_channels is not None and in_channels > 1 and a["groups"] == in_channels
            and a["out_channels"] % in_channels == 0)


def applies(node: Node, algo: str, in_channels: int | None = None) -> bool:
    """Whether `algo` can run conv `node` whose input has `in_channels` channels ("depthwise" needs them)."""
    if algo == "depthwise":
        return is_depthwise(node, in_channels)
    if algo not in WINOGRAD_TILE:
        return True
    a = node.attrs
    return (node.op == "conv2d" and tuple(a["kernel"]) == (3, 3) and tuple(a["stride"]) == (1, 1)
            and tuple(a["dilation"]) == (1, 1) and a["groups"] == 1)


def candidates(node: Node, target_algos: tuple[str, ...], graph: Graph | None = None) -> tuple[str, ...]:
    """The target's algorithms that apply to `node`; without its `graph` "depthwise" is left out (the
    input's channel count decides it)."""
    in_channels = graph.node(graph.activation_inputs(node)[0]).type.shape[1] if graph is not None else None
    return tuple(a for a in target_algos if applies(node, a, in_channels))


def describe(node: Node) -> str:
    a = node.attrs
    return (f"{node.op} {fmt_dims(a['kernel'])}, stride {fmt_dims(a['stride'])}, dilation "
            f"{fmt_dims(a['dilation'])}, groups {a['groups']}")


def cuda_device_name() -> str | None:
    """The first CUDA device's name in lower case, or None without torch, a driver or a GPU."""
    try:
        import torch

        return torch.cuda.get_device_name(0).lower() if torch.cuda.is_available() else None
    except Exception:
        return None


def target_device(ctx: PassContext) -> str:
    """'cpu', 'h100', 'h200' or 'cuda' (another GPU): the device the target backend will run on.
    `ctx.device` says 'cpu' unless told otherwise, so a backend that lists CUDA first (triton) is
    taken to run on the GPU whenever there is one."""
    if ctx.device in TARGET_PROFILES:  # compiling ahead of time for a GPU target: its profile
        return TARGET_PROFILES[ctx.device]
    caps = ctx.capabilities
    devices = tuple(caps.devices) if caps is not None and caps.devices else ("cpu",)
    device = ctx.device if any(ctx.device.startswith(d) for d in devices) else devices[0]
    gpu = cuda_device_name() if device.startswith("cuda") or devices[0] == "cuda" else None
    if gpu is None:
        return "cpu" if device.startswith("cuda") and "cpu" in devices else device
    return next((key for key in ("h200", "h100") if key in gpu), "cuda")


def check_choice(layer: str, algo: str, convs: dict[str, Node], target: tuple[str, ...], backend: str,
                 where: str, graph: Graph) -> None:
    """Raises an OptionError naming the layer and the valid choices when `algo` cannot run it."""
    if layer not in convs:
        close = difflib.get_close_matches(layer, list(convs), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        names = list(convs)
        listed = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        raise OptionError(f"{where} {layer}={algo}: no conv layer named '{layer}'; {hint}conv layers: "
                          f"{listed or 'none'}")
    valid = candidates(convs[layer], target, graph)
    if algo not in valid:
        why = f" (winograd needs {WINOGRAD_NEEDS})" if algo in WINOGRAD_TILE else ""
        why = f" (depthwise needs {DEPTHWISE_NEEDS})" if algo == "depthwise" else why
        raise OptionError(f"{where} {layer}={algo}: algorithm '{algo}' does not apply to conv layer "
                          f"'{layer}' ({describe(convs[layer])}) on backend '{backend}'{why}; valid "
                          f"choices: {', '.join(valid) or 'none'}")


def pick(times: dict[str, float], errors: dict[str, float], order: tuple[str, ...], dtype: str) -> str:
    """The fastest candidate within its numerical budget (ties: the backend's order); if none is
    within budget, the most accurate."""
    within = [a for a in order if a in times and errors.get(a, 0.0) <= budget(dtype, a)]
    if within:
        return min(within, key=lambda a: (times[a], order.index(a)))
    measured = [a for a in order if a in errors]
    return min(measured, key=lambda a: errors[a]) if measured else order[0]


def numpy_cpu_profile(ctx: PassContext, device: str) -> NumpyProfile | None:
    """The measured (or shipped) profile when the target is the NumPy backend on a CPU, else None."""
    if ctx.backend_name != "numpy" or device != "cpu" or ctx.dtype not in ("float32", "float64"):
        return None
    option = ctx.options.get("choose_conv_algo", {}).get("calibrate")
    return numpy_profile(ctx.dtype, calibration_enabled(option), ctx.log)


def modelled_times(node: Node, g: Graph, ctx: PassContext, cands: tuple[str, ...], device: str,
                   cpu: NumpyProfile | None) -> dict[str, float]:
    """Seconds per candidate: the NumPy kernels priced on this machine's profile `cpu`, or (None) the
    roofline model of passes/conv_cost.py for the other backends and devices."""
    shape = ConvShape.of(node, g)
    if cpu is not None:
        return {a: estimate_numpy(shape, a, cpu) for a in cands}
    profile = PROFILES.get(device, PROFILES["h100"])  # an unnamed GPU: the documented one
    return {a: estimate(shape, a, profile, ctx.dtype) for a in cands}


def decide(node: Node, g: Graph, ctx: PassContext, cands: tuple[str, ...], sig: str, mode: str,
           device: str, cache: PlanCache, cpu: NumpyProfile | None) -> LayerPlan:
    """Chooses by the cost model or by measuring, replaying the cache when it has this signature."""
    source = "measured" if mode == "measure" else "modelled"
    hit = cache.get(sig, cands)
    if hit is not None:
        algo, times, errors = hit["algo"], dict(hit["times"]), dict(hit.get("errors", {}))
    else:
        if mode == "measure":
            times, errors, failures = measure(node, g, ctx, cands)
            ctx.log.extend(f"choose_conv_algo: {node.name}: {a} failed: {why}" for a, why in failures.items())
        else:
            times, errors = modelled_times(node, g, ctx, cands, device, cpu), {}
        algo = pick(times, errors, cands, ctx.dtype)
        cache.put(sig, cands, algo, times, errors)
    return LayerPlan(node.name, node.op, sig, algo, source, times, budget(ctx.dtype, algo), errors)


def plan_header(g: Graph, ctx: PassContext, device: str, mode: str) -> Plan:
    """A plan without layers that says which compile it is for."""
    import convc

    shapes = tuple(n.type.shape for n in g.inputs)
    return Plan(ctx.backend_name, device, ctx.dtype, mode, (), g.name, structure_hash(g), shapes,
                convc.__version__)


def follow_plan_file(path: Path, made_for: Plan, on_mismatch: str, ctx: PassContext) -> Plan | None:
    """The plan in `path` when it was made for this compile; None (re-measure) when it was not and the
    user asked for that; otherwise a PlanMismatchError naming every difference."""
    if on_mismatch not in ON_PLAN_MISMATCH:
        raise OptionError(f"plan_mismatch={on_mismatch!r}: choose one of {', '.join(ON_PLAN_MISMATCH)}")
    try:
        followed = load_plan_file(path)
    except OutdatedPlanFile as e:
        if on_mismatch == "error":
            raise
        return _remeasure(f"{e}", path, ctx)
    differences = followed.mismatches(made_for)
    if not differences:
        return followed
    what = (f"--plan {path} was made for {followed.describe()}; this compile is for {made_for.describe()}; "
            f"they differ in {'; '.join(differences)}")
    if on_mismatch == "error":
        raise PlanMismatchError(f"{what}. Name another plan file, or re-measure and rewrite this one with "
                                f"--plan-mismatch remeasure (plan_mismatch='remeasure')")
    return _remeasure(what, path, ctx)


def _remeasure(why: str, path: Path, ctx: PassContext) -> None:
    message = f"convc: {why}; choosing the algorithms again and rewriting {path}"
    warnings.warn(message, stacklevel=3)
    ctx.log.append(f"choose_conv_algo: {message}")


@convc_pass("choose_conv_algo", opt_level=2, runs_after=(
    "eliminate_dropout", "eliminate_identity", "fold_constants", "dce", "fold_bn", "fuse_epilogue"))
def choose_conv_algo(g: Graph, ctx: PassContext) -> bool:
    """Picks each conv's algorithm: cost model at -O2, measured at -O3; --algo and --plan override.
    Progress goes to convc.progress; the option `progress` (a callable taking one line) is shorthand
    for wrapping the compile in convc.progress.reporting_lines_to(progress)."""
    hook = ctx.options_of("choose_conv_algo", OPTIONS).get("progress")
    if hook is not None and not callable(hook):
        raise OptionError(f"pass option choose_conv_algo.progress={hook!r}: expected a callable taking one "
                          f"line of text (print, a list's append), or leave it out")
    with reporting_lines_to(hook):
        return _choose_conv_algo(g, ctx)


def _choose_conv_algo(g: Graph, ctx: PassContext) -> bool:
    caps = ctx.capabilities
    target = tuple(caps.conv_algos) if caps is not None else CONV_ALGOS
    winograd_off = not winograd_allowed(ctx)
    if winograd_off:
        target = tuple(a for a in target if a not in WINOGRAD_TILE)
    backend = ctx.backend_name
    convs = {n.name: n for n in g.nodes(CONV_OPS)}
    pins, plan_path = user_choices(ctx)
    mode = "measure" if ctx.opt_level >= 3 else "model"
    device = target_device(ctx)
    header = plan_header(g, ctx, device, mode)
    followed = None
    if plan_path is not None and plan_path.exists():
        on_mismatch = ctx.options_of("choose_conv_algo", OPTIONS).get("plan_mismatch", "error")
        followed = follow_plan_file(plan_path, header, on_mismatch, ctx)
    chosen = [(layer, algo, "--algo") for layer, algo in pins.items()] + \
        [(lp.layer, lp.algo, f"--plan {plan_path}:") for lp in (followed.layers if followed else ())]
    for layer, algo, where in chosen:
        if winograd_off and algo in WINOGRAD_TILE:
            raise OptionError(f"{where} {layer}={algo} contradicts winograd=False (--no-winograd): pin another "
                              f"algorithm for '{layer}' or allow Winograd")
        check_choice(layer, algo, convs, target, backend, where, g)
    cpu = numpy_cpu_profile(ctx, device) if mode == "model" else None
    # A plan holds for one thread count, and a modelled one for one profile: both are in the cache key.
    extra: dict[str, object] = {"threads": blas_threads()}
    if mode == "model":
        extra["profile"] = cpu.fingerprint() if cpu is not None else "built-in"
        if cpu is not None:  # the NumPy backend's depthwise price depends on its numba switch
            extra["kernels"] = "numba" if compiled_kernels_priced() else "numpy"
    cache = PlanCache(backend, device, ctx.dtype, mode, COST_MODEL_VERSION, extra).load()
    if cache.problem:
        ctx.log.append(f"choose_conv_algo: {cache.problem}")
    layers: list[LayerPlan] = []
    changed = False
    # Measuring (-O3) takes seconds per layer: report each one (convc.progress; the CLI draws a bar).
    steps = track(list(convs.values()), "measuring conv algorithms", lambda n: n.name) if mode == "measure" \
        else convs.values()
    for node in steps:
        cands = candidates(node, target, g)
        sig = signature(node, g)
        preset = node.attrs["algo"]
        from_file = followed.layer(node.name) if followed is not None else None
        if node.name in pins:
            algo = pins[node.name]
            lp = LayerPlan(node.name, node.op, sig, algo, "pinned", {}, budget(ctx.dtype, algo))
        elif from_file is not None:
            lp = LayerPlan(node.name, node.op, sig, from_file.algo, "plan file", from_file.times,
                           budget(ctx.dtype, from_file.algo), from_file.errors)
        elif preset is not None and preset in cands:
            lp = LayerPlan(node.name, node.op, sig, preset, "set in the graph", {}, budget(ctx.dtype, preset))
        elif len(cands) == 1:
            lp = LayerPlan(node.name, node.op, sig, cands[0], "only choice", {}, budget(ctx.dtype, cands[0]))
        elif not cands:
            ctx.log.append(f"choose_conv_algo: backend '{backend}' has no algorithm for '{node.name}'")
            continue
        else:
            lp = decide(node, g, ctx, cands, sig, mode, device, cache, cpu)
            if mode == "measure":  # saved layer by layer: an interrupted -O3 keeps what it measured
                cache.save()
        layers.append(lp)
        algo_attr = lp.algo if lp.algo in CONV_ALGOS or len(cands) > 1 else preset
        if algo_attr != preset:
            g.replace_node(node.replace(attrs={**node.attrs, "algo": algo_attr}))
            changed = True
    problem = cache.save()
    if problem:
        ctx.log.append(f"choose_conv_algo: {problem}")
    plan = Plan(backend, device, ctx.dtype, mode, tuple(layers), header.model, header.model_hash,
                header.input_shapes, header.convc_version)
    ctx.results["plan"] = plan
    if plan_path is not None and followed is None:
        plan.save(plan_path)
        ctx.log.append(f"choose_conv_algo: wrote the plan to {plan_path}")
    return changed
