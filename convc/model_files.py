"""Graphs saved by `net.save` / `convc.save` as models for every command: `convc run tiny.json`.

    path = saved_graph_path("tiny.json")   # Path('tiny.json'); also for 'tiny' when tiny.json, tiny.npz exist
    net = load_saved_graph("tiny.json", batch=8)

A saved graph has fixed input shapes; `batch` re-types it for another batch size (when its examples are
independent), and an input shape other than the saved one is refused, naming both.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from convc.dsl import Network
from convc.errors import ConvcError, OptionError
from convc.ir import Graph

GRAPH_SUFFIXES = (".json", ".npz")


def saved_graph_path(spec: str) -> Path | None:
    """The .json file `spec` names: a path ending in .json or .npz, or a stem with both files beside it."""
    path = Path(spec)
    if path.suffix.lower() in GRAPH_SUFFIXES:
        return path.with_suffix(".json")
    if path.with_name(path.name + ".json").is_file() and path.with_name(path.name + ".npz").is_file():
        return path.with_name(path.name + ".json")
    return None


def read_saved_graph(json_path: Path) -> Graph:
    """Reads and verifies a saved graph; a missing or corrupt file is a ConvcError naming it."""
    from convc.serialize import load

    npz = json_path.with_suffix(".npz")
    if not json_path.is_file():
        raise OptionError(f"model file '{json_path}' does not exist (net.save('{json_path.with_suffix('')}') "
                          f"writes it with its parameters '{npz}')")
    if not npz.is_file():
        raise OptionError(f"model file '{json_path}' has no parameter file '{npz}' beside it; net.save "
                          f"writes both, copy them together")
    try:
        return load(json_path)
    except ConvcError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        # valid JSON that is not a graph, or a truncated / foreign parameter file
        raise ConvcError(f"model file '{json_path}' (with '{npz}') is corrupt or not a convc graph "
                         f"({type(e).__name__}: {e}); write one with net.save or convc.save") from None


def load_saved_graph(spec: str, batch: int | None = None,
                     input_shape: tuple[int, ...] | None = None) -> Network:
    """A Network around the saved graph, re-typed for `batch` when given."""
    from convc.batching import batch_size, rebatch

    path = saved_graph_path(spec)
    if path is None:
        raise OptionError(f"'{spec}' is not a saved graph (.json with its .npz)")
    graph = read_saved_graph(path)
    if input_shape is not None:
        saved = graph.inputs[0].type.shape[1:]
        if tuple(input_shape) not in (tuple(saved), tuple(saved[1:])):
            given, kept = ",".join(map(str, input_shape)), ",".join(map(str, saved))
            raise OptionError(f"--input {given}: '{path}' was saved for input shape {kept} (without the "
                              f"batch axis); a saved graph keeps its shapes")
    if batch is not None and batch != batch_size(graph):
        graph = rebatch(graph, batch)
    net = Network(graph.name)
    net.graph = graph
    return net
