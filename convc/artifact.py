"""Saved compiled models: one file holding everything a compile made, loaded and run with no pass and no
autotuning.

    model = convc.compile(net, backend="numpy", max_batch=8)
    convc.save_compiled(model, "tiny.convc")
    again = convc.load_compiled("tiny.convc")           # same outputs; refuses a changed convc or target
    again = convc.load_compiled("tiny.convc", recompile=True)   # or compiles the saved graph again

The file is a zip archive (format in docs/artifacts.md): manifest.json, one optimized graph per batch
bucket (graphs/b8.json), every parameter array once (arrays/<sha256>.npy, shared between buckets), the
algorithm plans, and what the backend adds (Triton: packed weights, tuned kernel configurations and, on
a GPU target, the compiled kernel binaries). The manifest lists the SHA-256 of every other entry and a
content hash over itself, so a changed byte anywhere is refused.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from convc.artifact_target import describe_target, local_gpu, target_differences
from convc.backend import CompiledModel
from convc.batching import BatchedModel
from convc.errors import ConvcError, FileFormatError, OptionError
from convc.ir import Graph
from convc.registry import get_backend
from convc.serialize import graph_from_dict, graph_to_dict, write_output

FORMAT = "convc-compiled"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class StaleArtifactError(ConvcError):
    """A saved compiled model made by another convc, or for another backend version, device or target."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _content_hash(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    return _sha(json.dumps(body, sort_keys=True).encode())


def bucket_models(model: CompiledModel) -> dict[int, CompiledModel]:
    """Batch bucket -> the static-shape model that runs it (one entry for a model without buckets)."""
    if isinstance(model, BatchedModel):
        return dict(model.models)
    shape = model.graph.inputs[0].type.shape if model.graph.inputs else (1,)
    return {int(shape[0]) if shape else 1: model}


def save_compiled(model: CompiledModel, path: str | Path) -> Path:
    """Writes `model` (from convc.compile) to one file, atomically; returns its path."""
    settings = getattr(model, "settings", None)
    if settings is None:
        raise OptionError("save_compiled takes a model made by convc.compile (which records how it was "
                          "compiled)")
    entries: dict[str, bytes] = {}

    def add(name: str, data: bytes) -> str:
        entries[name] = data
        return name

    def add_array(array: np.ndarray) -> str:
        data = _npy(array)
        return add(f"arrays/{_sha(data)}.npy", data)

    buckets: dict[str, Any] = {}
    for bucket, one in bucket_models(model).items():
        graph_doc = json.dumps(graph_to_dict(one.graph), indent=1).encode()
        state = one.artifact_state() if hasattr(one, "artifact_state") else {}
        plan = getattr(one, "plan", None)
        buckets[str(bucket)] = {
            "graph": add(f"graphs/b{bucket}.json", graph_doc),
            "params": {name: add_array(a) for name, a in one.graph.params.items()},
            "plan": plan.to_dict() if plan is not None else None,
            "backend_state": state.get("meta", {}),
            "backend_arrays": {name: add_array(a) for name, a in state.get("arrays", {}).items()},
            "binaries": {name: add(f"binaries/{name}", data)
                         for name, data in state.get("binaries", {}).items()},
        }
    first = next(iter(bucket_models(model).values()))
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "backend": model.backend, "dtype": model.dtype,
        "model": model.graph.name, "target": describe_target(model.backend, first),
        "settings": settings, "buckets": sorted(int(b) for b in buckets), "models": buckets,
        "binaries_note": (first.artifact_state().get("binaries_note", "") if hasattr(first, "artifact_state")
                          else f"backend '{model.backend}' compiles no kernel binaries"),
        "entries": {name: _sha(data) for name, data in sorted(entries.items())},
    }
    manifest["content_hash"] = _content_hash(manifest)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in sorted(entries.items()):
            z.writestr(name, data)
    out = Path(path)
    write_output(out, buf.getvalue(), "save_compiled")
    return out


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every entry, after checking the format, the version and every hash."""
    path = Path(path)
    where = f"compiled model '{path}'"
    if not path.is_file():
        raise OptionError(f"{where} does not exist (write one with `convc compile MODEL -o {path.name}`)")
    try:
        with zipfile.ZipFile(path) as z:
            files = {name: z.read(name) for name in z.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise FileFormatError(f"{where} is not a readable convc artifact ({e or type(e).__name__})") from None
    try:
        manifest = json.loads(files.pop(MANIFEST))
    except (KeyError, ValueError) as e:
        raise FileFormatError(f"{where} has no readable {MANIFEST} ({type(e).__name__}); not a convc "
                              f"artifact") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FileFormatError(f"{where} is not a convc compiled model (format {manifest.get('format')!r})"
                              if isinstance(manifest, dict) else f"{where} has a malformed manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleArtifactError(f"{where} has format version {manifest.get('format_version')!r}; this convc "
                                 f"reads version {FORMAT_VERSION}: compile the model again")
    listed = manifest.get("entries")
    if not isinstance(listed, dict) or set(listed) != set(files):
        extra = sorted(set(files) - set(listed or {}))
        missing = sorted(set(listed or {}) - set(files))
        raise FileFormatError(f"{where} was tampered with or truncated: entries not in the manifest {extra}, "
                              f"missing {missing}")
    bad = [name for name, data in files.items() if _sha(data) != listed[name]]
    if bad or manifest.get("content_hash") != _content_hash(manifest):
        what = f"entries {', '.join(bad[:5])}" if bad else "the manifest"
        raise FileFormatError(f"{where} is corrupt or was modified: the content hash of {what} does not "
                              f"match (compile the model again rather than edit the file)")
    return manifest, files


def load_compiled(path: str | Path, device: str | None = None, recompile: bool = False) -> CompiledModel:
    """A runnable model from a saved file: no pass runs and nothing is autotuned. A file made by another
    convc, or for another backend version, device or target is a StaleArtifactError; with
    `recompile=True` its saved graphs are compiled again here instead (with a warning). A file compiled
    ahead of time for a GPU architecture (--target sm_90) runs on the CUDA device when this machine's GPU
    has that architecture."""
    manifest, files = read_artifact(path)
    backend = get_backend(manifest["backend"])
    settings = manifest["settings"]
    options = dict(settings.get("backend_options", {}))
    saved_target = manifest.get("target", {})
    if device is None and saved_target.get("device") == "meta" and saved_target.get("arch") and \
            local_gpu()[1] == saved_target.get("arch"):
        device = "cuda"  # compiled ahead of time for this GPU's architecture: it runs here
    if device is not None:
        options["device"] = device
    options.pop("target", None) if device is not None else None
    graphs = {int(b): _graph(entry, files, path) for b, entry in manifest["models"].items()}
    problems: list[str] = []
    models: dict[int, CompiledModel] = {}
    try:
        for bucket, entry in sorted(manifest["models"].items(), key=lambda kv: int(kv[0])):
            state = {"meta": entry["backend_state"],
                     "arrays": {k: _array(files[v], path) for k, v in entry["backend_arrays"].items()},
                     "binaries": {k: files[v] for k, v in entry.get("binaries", {}).items()}}
            extra = {"saved_state": state} if entry["backend_state"] else {}
            models[int(bucket)] = backend.compile(graphs[int(bucket)], dtype=manifest["dtype"], **options,
                                                  **extra)
        problems = target_differences(manifest["target"], describe_target(backend.name, models[min(models)]))
        for one in models.values() if not problems else ():  # kernels compiled for this very target
            if hasattr(one, "install_saved_kernels"):
                one.install_saved_kernels()
    except ConvcError as e:
        problems = [f"it cannot be rebuilt here ({e})"]
    if problems:
        saved = manifest["target"]
        why = (f"compiled model '{path}' was made by convc {saved.get('convc')} for backend "
               f"'{backend.name}' on {saved.get('device')}; here {'; '.join(problems)}")
        if not recompile:
            raise StaleArtifactError(f"{why}. Compile it again (convc compile ... -o {Path(path).name}) or "
                                     f"load it with recompile=True to compile its saved graph here")
        warnings.warn(f"convc: {why}; compiling its saved graph again", stacklevel=2)
        return _recompile(graphs, manifest, options)
    from convc.passes.plan import Plan

    plans = {int(b): Plan.from_dict(e["plan"]) if e["plan"] else None for b, e in manifest["models"].items()}
    for bucket, one in models.items():
        one.plan, one.pass_records = plans[bucket], []
    result = BatchedModel(models, plans) if len(models) > 1 or _batched(settings) else models[min(models)]
    result.settings = settings
    return result


def _batched(settings: dict[str, Any]) -> bool:
    return len(settings.get("buckets", [])) > 1


def _graph(entry: dict[str, Any], files: dict[str, bytes], path: str | Path) -> Graph:
    params = {name: _array(files[ref], path) for name, ref in entry["params"].items()}
    graph = graph_from_dict(json.loads(files[entry["graph"]]), params)
    graph.verify()
    return graph


def _array(data: bytes, path: str | Path) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise FileFormatError(f"compiled model '{path}': an array entry is unreadable ({e})") from None


def _recompile(graphs: dict[int, Graph], manifest: dict[str, Any], options: dict[str, Any]) -> CompiledModel:
    """The saved optimized graphs through the pipeline again, their algorithm choices cleared."""
    from convc.compiler import compile as convc_compile

    settings = manifest["settings"]
    largest = graphs[max(graphs)].copy()
    for node in largest.nodes():
        if "algo" in node.attrs:
            largest.replace_node(node.replace(attrs={**node.attrs, "algo": None}))
    common = dict(backend=manifest["backend"], dtype=manifest["dtype"], opt_level=settings["opt_level"],
                  passes=settings["passes"], disable=settings["disable"], algo=settings["algo"], **options)
    if _batched(settings):
        return convc_compile(largest, max_batch=max(graphs), min_batch=min(graphs), **common)
    return convc_compile(largest, **common)


def saved_network(path: str | Path, batch: int | None = None) -> Any:
    """The largest bucket's optimized graph of a saved model as a Network (for `convc show m.convc`)."""
    from convc.batching import batch_size, rebatch
    from convc.dsl import Network

    manifest, files = read_artifact(path)
    largest = max(manifest["models"], key=int)
    graph = _graph(manifest["models"][largest], files, path)
    if batch is not None and batch != batch_size(graph):
        graph = rebatch(graph, batch)
    net = Network(graph.name)
    net.graph = graph
    return net
