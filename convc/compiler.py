"""`convc.compile`: DSL network or graph -> pass pipeline -> backend -> CompiledModel.

    model = convc.compile(net, backend="numpy", dtype="float32", opt_level=2,
                          passes=["+my_pass"], disable=["fold_bn"], algo={"features.0": "direct"})
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convc.backend import CompiledModel
from convc.dsl import Network
from convc.errors import OptionError
from convc.ir import Graph
from convc.pass_manager import PassContext, PassManager, resolve_pipeline
from convc.registry import get_backend
from convc.types import check_dtype


def as_graph(model: Network | Graph) -> Graph:
    if isinstance(model, Network):
        return model.graph
    if isinstance(model, Graph):
        return model
    raise OptionError(f"compile() takes a convc Network or Graph, got {type(model).__name__}")


def parse_algo_overrides(algo: Mapping[str, str] | Sequence[str] | str | None) -> dict[str, str]:
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


def optimize(model: Network | Graph, backend: str = "numpy", dtype: str = "float32", opt_level: int = 2,
             passes: Sequence[str] | None = None, disable: Sequence[str] = (),
             algo: Mapping[str, str] | Sequence[str] | str | None = None, plan: str | Path | None = None,
             check_numerics: bool | str = "plugins", timing: bool = False,
             dump_ir: str | Path | None = None, seed: int = 0,
             device: str | None = None) -> tuple[Graph, PassContext, PassManager]:
    """Runs the pass pipeline on a copy of the graph; returns it with the context and the manager.
    `device` tells the passes where the code will run ("cuda", or a GPU target such as "sm_90")."""
    graph = as_graph(model).copy()
    graph.verify()
    target = get_backend(backend)
    ctx = PassContext(backend=target, dtype=check_dtype(dtype), opt_level=opt_level,
                      check_numerics=check_numerics, algo_overrides=parse_algo_overrides(algo),
                      plan_path=str(plan) if plan else None, seed=seed, device=device or "cpu")
    pipeline = resolve_pipeline(opt_level, passes, disable, backend=target.name)
    manager = PassManager(pipeline, timing=timing, dump_ir=dump_ir)
    manager.run(graph, ctx)
    return graph, ctx, manager


def compile(model: Network | Graph, backend: str = "numpy", dtype: str = "float32", opt_level: int = 2,
            passes: Sequence[str] | None = None, disable: Sequence[str] = (),
            algo: Mapping[str, str] | Sequence[str] | str | None = None, plan: str | Path | None = None,
            check_numerics: bool | str = "plugins", timing: bool = False,
            dump_ir: str | Path | None = None, **backend_options: Any) -> CompiledModel:
    """Verifies the graph, runs the pass pipeline for `opt_level` and hands the result to `backend`.

    The returned model carries `pass_records` (what each pass did) and `plan` (the conv algorithm plan,
    when the algorithm pass ran)."""
    dtype = check_dtype(dtype)
    device = backend_options.get("target") or backend_options.get("device")
    graph, ctx, manager = optimize(model, backend, dtype, opt_level, passes, disable, algo, plan,
                                   check_numerics, timing, dump_ir, device=str(device) if device else None)
    compiled = get_backend(backend).compile(graph, dtype=dtype, **backend_options)
    compiled.pass_records = manager.records
    compiled.plan = ctx.results.get("plan")
    return compiled
