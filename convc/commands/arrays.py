"""Model inputs from .npy / .npz files and outputs to .npy files, for `convc run`.

    inputs = read_inputs("x.npy", graph)            # checked against the graph's input types
    written = write_outputs("out/", graph.outputs, outs)   # out/<output>.npy, one per output
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from convc.errors import OptionError
from convc.ir import Graph
from convc.serialize import atomic_write


def _load(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    if not path.is_file():
        raise OptionError(f"--input-file {path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise OptionError(f"--input-file {path}: not a readable .npy or .npz array file ({e})") from None


def read_inputs(path: str | Path, graph: Graph, dtype: type = np.float32,
                max_batch: int | None = None) -> list[np.ndarray]:
    """The arrays in `path` for the graph's inputs, as `dtype`: one array (.npy) for a one-input graph, or
    an .npz with an array per input name. Shapes must equal the inputs' (batch axis included); with
    `max_batch` (a model compiled for a batch range) any shared batch from 1 to max_batch is taken."""
    path = Path(path)
    loaded = _load(path)
    wanted = graph.inputs
    if isinstance(loaded, dict):
        missing = [n.name for n in wanted if n.name not in loaded]
        if missing:
            raise OptionError(f"--input-file {path}: no array for input(s) {', '.join(missing)}; the file "
                              f"holds {', '.join(loaded) or 'nothing'}")
        arrays = [loaded[n.name] for n in wanted]
    elif len(wanted) == 1:
        arrays = [loaded]
    else:
        raise OptionError(f"--input-file {path}: the model has {len(wanted)} inputs "
                          f"({', '.join(n.name for n in wanted)}); give an .npz with one array per name")
    out = []
    for node, array in zip(wanted, arrays):
        where = f"--input-file {path}: input '{node.name}' ({node.type})"
        if array.dtype.kind not in "fiu":
            raise OptionError(f"{where}: the array holds {array.dtype}, not real numbers")
        fits_range = max_batch is not None and array.ndim == len(node.type.shape) and \
            0 < array.shape[0] <= max_batch and tuple(array.shape[1:]) == tuple(node.type.shape[1:])
        if tuple(array.shape) != tuple(node.type.shape) and not fits_range:
            hint = ""
            if tuple(array.shape[1:]) == tuple(node.type.shape[1:]):
                hint = f"; run with --batch {array.shape[0]}" if max_batch is None else \
                    f"; the model runs batches 1..{max_batch} (compile with --batch 1..{array.shape[0]})"
            elif tuple(array.shape) == tuple(node.type.shape[1:]):
                hint = "; add the batch axis (x[None])"
            raise OptionError(f"{where}: the array's shape {tuple(array.shape)} is not the input's "
                              f"{tuple(node.type.shape)}{hint}")
        out.append(np.ascontiguousarray(array, dtype=dtype))
    if len({a.shape[0] for a in out}) > 1:
        raise OptionError(f"--input-file {path}: the arrays' batch sizes differ "
                          f"({', '.join(str(a.shape[0]) for a in out)}); the inputs share one batch")
    return out


def output_is_folder(target: str | Path) -> bool:
    """--output names a folder (one NAME.npy per output) unless it is a path ending in .npy."""
    target = Path(target)
    return target.is_dir() or str(target).endswith(("/", "\\")) or target.suffix != ".npy"


def write_outputs(target: str | Path, names: list[str], outputs: list[np.ndarray]) -> list[Path]:
    """One output to FILE.npy, or each output to DIR/<name>.npy (a folder: an existing one, a path ending
    in '/' or one without the .npy suffix). Written atomically; returns the paths. A path that cannot be
    written is an OptionError naming it."""
    target = Path(target)
    as_folder = output_is_folder(target)
    if not as_folder and len(outputs) != 1:
        raise OptionError(f"--output {target}: the model has {len(outputs)} outputs "
                          f"({', '.join(names)}); give a folder to write one .npy per output")
    paths = [target / f"{name.replace('/', '_')}.npy" for name in names] if as_folder else [target]
    for path, array in zip(paths, outputs):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        try:
            atomic_write(path, buffer.getvalue())
        except OSError as e:
            raise OptionError(f"--output {target}: cannot write {path} ({e.strerror or e}); name a "
                              f"writable file or folder") from None
    return paths
