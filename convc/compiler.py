"""`convc.compile`: DSL network or graph -> pass pipeline -> backend -> CompiledModel.

    model = convc.compile(net, backend="numpy", dtype="float32", opt_level=2,
                          passes=["+my_pass"], disable=["fold_bn"], algo={"features.0": "direct"})
    # the same pin, spelled as choose_conv_algo's own options:
    model = convc.compile(net, pass_options={"choose_conv_algo": {"algo": {"features.0": "direct"}}})
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convc.backend import CompiledModel
from convc.batching import BatchedModel, batch_buckets, batch_size, check_batchable, rebatch
from convc.dsl import Network
from convc.errors import ConvcError, OptionError, PluginError
from convc.ir import Graph
from convc.limits import check_graph
from convc.pass_manager import DEFAULT_PASS_TIMEOUT, PassContext, PassManager, resolve_pipeline
from convc.registry import backend_origin, get_backend
from convc.types import check_dtype

ALGO_PASS = "choose_conv_algo"  # the pass that reads --algo and --plan


def as_graph(model: Network | Graph) -> Graph:
    if isinstance(model, Network):
        return model.graph
    if isinstance(model, Graph):
        return model
    raise OptionError(f"compile() takes a convc Network or Graph, got {type(model).__name__}")


def pass_settings(pass_options: Mapping[str, Mapping[str, Any]] | None,
                  algo: Mapping[str, str] | Sequence[str] | str | None,
                  plan: str | Path | None, plan_mismatch: str | None = None) -> dict[str, dict[str, Any]]:
    """Per-pass options, with `algo=`, `plan=` and `plan_mismatch=` as sugar for choose_conv_algo's."""
    options = {name: dict(settings) for name, settings in (pass_options or {}).items()}
    sugar = {key: value for key, value in (("algo", algo), ("plan", plan), ("plan_mismatch", plan_mismatch))
             if value is not None}
    if sugar:
        options["choose_conv_algo"] = {**options.get("choose_conv_algo", {}), **sugar}
    return options


def optimize(model: Network | Graph, backend: str = "numpy", dtype: str = "float32", opt_level: int = 2,
             passes: Sequence[str] | None = None, disable: Sequence[str] = (),
             algo: Mapping[str, str] | Sequence[str] | str | None = None, plan: str | Path | None = None,
             check_numerics: bool | str = "plugins", timing: bool = False,
             dump_ir: str | Path | None = None, seed: int = 0,
             device: str | None = None, pass_options: Mapping[str, Mapping[str, Any]] | None = None,
             pass_timeout: float | None = DEFAULT_PASS_TIMEOUT,
             plan_mismatch: str | None = None) -> tuple[Graph, PassContext, PassManager]:
    """Runs the pass pipeline on a copy of the graph; returns it with the context and the manager.
    `device` tells the passes where the code will run ("cuda", or a GPU target such as "sm_90");
    `pass_options` are per-pass settings by pass name; `algo` and `plan` fill choose_conv_algo's, and
    `plan_mismatch` what a plan file made for another model, shape, dtype, backend or device gets:
    "error" (a PlanMismatchError, the default) or "remeasure" (chosen again, warned, rewritten);
    `pass_timeout`: seconds each pass may run (None or 0: no limit; docs/numerics.md)."""
    graph = as_graph(model).copy()
    graph.verify()
    check_graph(graph, check_dtype(dtype))  # before any pass or backend allocates for it
    target = get_backend(backend)
    ctx = PassContext(backend=target, dtype=check_dtype(dtype), opt_level=opt_level,
                      check_numerics=check_numerics, seed=seed, device=device or "cpu",
                      options=pass_settings(pass_options, algo, plan, plan_mismatch))
    pipeline = resolve_pipeline(opt_level, passes, disable, backend=target.name)
    _check_algorithm_options(ctx.options.get(ALGO_PASS, {}), pipeline, opt_level)
    manager = PassManager(pipeline, timing=timing, dump_ir=dump_ir, pass_timeout=pass_timeout)
    manager.run(graph, ctx)
    return graph, ctx, manager


def _check_algorithm_options(algo_options: Mapping[str, Any], pipeline: list[Any], opt_level: int) -> None:
    """--algo and --plan (algo=, plan=, or the same keys of pass_options['choose_conv_algo']) only mean
    something to the algorithm pass: without it (-O0, -O1, or disabled) they are refused, not ignored."""
    given = [flag for key, flag in (("algo", "--algo"), ("plan", "--plan")) if algo_options.get(key)]
    if given and ALGO_PASS not in {p.name for p in pipeline}:
        forms = {"--algo": "--algo LAYER=ALGORITHM (algo={'conv1': 'direct'})", "--plan": "--plan FILE (plan=)"}
        raise OptionError(f"{' and '.join(given)} would be ignored: the conv algorithm pass {ALGO_PASS} is not in "
                          f"the pipeline at -O{opt_level} with these --passes/--disable options, and only it "
                          f"reads {'; '.join(forms[f] for f in given)}: use -O2 or -O3 and keep {ALGO_PASS}, "
                          f"or drop {' and '.join(given)}")


def _plugin_failure(backend: str, graph: Graph, error: Exception) -> PluginError:
    return PluginError(f"backend '{backend}' from package '{backend_origin(backend)}' failed to compile graph "
                       f"'{graph.name}': {type(error).__name__}: {error}")


def compile(model: Network | Graph, backend: str = "numpy", dtype: str = "float32", opt_level: int = 2,
            passes: Sequence[str] | None = None, disable: Sequence[str] = (),
            algo: Mapping[str, str] | Sequence[str] | str | None = None, plan: str | Path | None = None,
            check_numerics: bool | str = "plugins", timing: bool = False,
            dump_ir: str | Path | None = None, pass_options: Mapping[str, Mapping[str, Any]] | None = None,
            pass_timeout: float | None = DEFAULT_PASS_TIMEOUT, plan_mismatch: str | None = None,
            max_batch: int | None = None, min_batch: int = 1, **backend_options: Any) -> CompiledModel:
    """Verifies the graph, runs the pass pipeline for `opt_level` and hands the result to `backend`.

    The returned model carries `pass_records` (what each pass did), `results` (what the passes
    published: `model.plan` is results["plan"], the conv algorithm plan, when the algorithm pass ran) and
    `settings` (what it was compiled with). With `max_batch`, the model runs every batch size from 1 to
    max_batch: it is compiled once per batch bucket (the powers of two from `min_batch` up, and
    max_batch), each with its own plan and tuned kernels, and a call runs the smallest bucket that holds
    its batch (convc.batching)."""
    dtype = check_dtype(dtype)
    options = {"opt_level": opt_level, "passes": passes, "disable": disable, "algo": algo,
               "check_numerics": check_numerics, "timing": timing, "pass_options": pass_options,
               "plan_mismatch": plan_mismatch, "pass_timeout": pass_timeout}
    settings = {"backend": backend, "dtype": dtype, "opt_level": opt_level,
                "passes": list(passes) if passes is not None else None, "disable": list(disable),
                "algo": algo if algo is None or isinstance(algo, str) else
                dict(algo) if isinstance(algo, Mapping) else list(algo),
                "pass_options": {k: dict(v) for k, v in (pass_options or {}).items()},
                "backend_options": {k: v if isinstance(v, (bool, int, float)) else str(v)
                                    for k, v in backend_options.items() if v is not None}}
    if max_batch is None:
        compiled = _compile_one(as_graph(model), backend, dtype, options, plan, dump_ir, backend_options)
        batches = [batch_size(compiled.graph)] if compiled.graph.inputs else []
        compiled.settings = {**settings, "buckets": batches}
        return compiled
    if plan is not None:
        raise OptionError(f"plan={str(plan)!r} with max_batch={max_batch}: a plan file holds one input shape "
                          f"and each batch bucket has its own plan; leave out one of the two")
    graph = as_graph(model)
    buckets = batch_buckets(max_batch, min_batch)
    check_batchable(graph)
    models: dict[int, CompiledModel] = {}
    shared: dict[str, Any] = {}
    for b in buckets:
        dump = dump_ir if b == buckets[-1] else None
        models[b] = _compile_one(rebatch(graph, b), backend, dtype, options, None, dump, backend_options,
                                 shared)
    batched = BatchedModel(models, {b: m.plan for b, m in models.items()})
    batched.settings = {**settings, "buckets": list(buckets)}
    return batched


def _compile_one(graph: Graph, backend: str, dtype: str, options: dict[str, Any], plan: str | Path | None,
                 dump_ir: str | Path | None, backend_options: dict[str, Any],
                 shared: dict[str, Any] | None = None) -> CompiledModel:
    """One static-shape compile. `shared` holds parameter arrays of other batch buckets: an equal array
    is shared rather than kept twice."""
    device = backend_options.get("target") or backend_options.get("device")
    optimized, ctx, manager = optimize(graph, backend, dtype, options["opt_level"], options["passes"],
                                       options["disable"], options["algo"], plan, options["check_numerics"],
                                       options["timing"], dump_ir, device=str(device) if device else None,
                                       pass_options=options["pass_options"],
                                       plan_mismatch=options["plan_mismatch"],
                                       pass_timeout=options["pass_timeout"])
    if shared is not None:
        for name, array in optimized.params.items():
            kept = shared.setdefault(name, array)
            if kept is not array and kept.shape == array.shape and kept.dtype == array.dtype and \
                    np.array_equal(kept, array, equal_nan=True):
                optimized.params[name] = kept
    target = get_backend(backend)
    try:
        compiled = target.compile(optimized, dtype=dtype, **backend_options)
    except ConvcError:
        raise
    except Exception as e:
        if backend_origin(backend) == "convc":
            raise  # convc's own backend failing is a bug in convc: keep its traceback
        raise _plugin_failure(backend, optimized, e) from e
    compiled.pass_records = manager.records
    compiled.results = dict(ctx.results)
    return compiled
