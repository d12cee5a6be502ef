"""JSON form of a graph (exact round trip) and saving a graph with its parameters (.json + .npz).

Files are written atomically (temporary file, then rename), so a crash never leaves half a file. A saved
pair is one unit: the .json records the .npz's sha256 and `load` refuses a pair that does not match.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from convc.errors import FileFormatError, GraphError, OptionError
from convc.ir import Graph, Node
from convc.types import TensorType

FORMAT = "convc-graph"
VERSION = 1

# Plans, caches and graph JSON are kilobytes to a few megabytes; anything past this is not one of them.
MAX_TEXT_FILE_BYTES = 256 << 20


def _to_json(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_to_json(i) for i in v]
    return v


def _from_json(v: Any) -> Any:
    # Attributes only ever hold tuples (never lists), so every JSON list becomes a tuple again.
    if isinstance(v, list):
        return tuple(_from_json(i) for i in v)
    return v


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": list(n.inputs),
             "attrs": {k: _to_json(v) for k, v in n.attrs.items()},
             "type": {"shape": list(n.type.shape), "dtype": n.type.dtype}}
            for n in graph.nodes()
        ],
        "outputs": list(graph.outputs),
    }


def _checked(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(what)


def _node_from_dict(nd: Any) -> Node:
    _checked(isinstance(nd, dict), f"a node is {type(nd).__name__}, not an object")
    name, op, inputs, attrs, typ = nd["name"], nd["op"], nd["inputs"], nd["attrs"], nd["type"]
    _checked(isinstance(name, str) and isinstance(op, str), f"node name/op {name!r}/{op!r} are not strings")
    _checked(isinstance(inputs, list) and all(isinstance(i, str) for i in inputs),
             f"node '{name}': inputs {inputs!r} are not a list of names")
    _checked(isinstance(attrs, dict), f"node '{name}': attrs are not an object")
    shape = typ["shape"]
    _checked(isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape),
             f"node '{name}': shape {shape!r} is not a list of non-negative integers")
    _checked(isinstance(typ["dtype"], str), f"node '{name}': dtype {typ['dtype']!r} is not a string")
    return Node(name, op, tuple(inputs), {k: _from_json(v) for k, v in attrs.items()},
                TensorType(tuple(shape), typ["dtype"]))


def _param_array(node: Node, params: dict[str, np.ndarray] | None) -> np.ndarray:
    from convc.limits import check_shape

    t = node.type
    check_shape(t.shape, t.dtype, f"parameter '{node.name}' {t}")
    arr = params.get(node.name) if params is not None else None
    if arr is None:
        return np.zeros(t.shape, t.dtype if t.dtype in ("float32", "float64") else "float32")
    arr = np.asarray(arr)
    if arr.dtype.kind != "f":
        raise ValueError(f"parameter '{node.name}' holds {arr.dtype} values; expected real floating point")
    return arr


def graph_from_dict(data: Any, params: dict[str, np.ndarray] | None = None) -> Graph:
    """Rebuilds a graph; parameters come from `params`, or zeros of each param node's shape.

    A foreign, malformed or newer-versioned document is a FileFormatError (GraphError's sibling)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise FileFormatError(f"not a convc graph (format {found!r}, expected {FORMAT!r})")
    version = data.get("version")
    if type(version) is not int or not 1 <= version <= VERSION:
        raise FileFormatError(f"convc graph version {version!r} is not one this convc reads (1 to {VERSION}); "
                              f"a newer convc wrote it, or it is damaged")
    try:
        _checked(isinstance(data["name"], str), "name is not a string")
        _checked(isinstance(data["nodes"], list), "nodes is not a list")
        _checked(isinstance(data["outputs"], list) and all(isinstance(o, str) for o in data["outputs"]),
                 "outputs is not a list of names")
        g = Graph(data["name"])
        for nd in data["nodes"]:
            node = g.add(_node_from_dict(nd))
            if node.op == "param":
                g.params[node.name] = _param_array(node, params)
        g.outputs = list(data["outputs"])
    except (KeyError, TypeError, ValueError, AttributeError, GraphError) as e:
        what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise FileFormatError(f"malformed graph JSON: {what}") from None
    return g


def to_json(graph: Graph) -> str:
    return json.dumps(graph_to_dict(graph), indent=1)


def from_json(text: str, params: dict[str, np.ndarray] | None = None) -> Graph:
    return graph_from_dict(json.loads(text), params)


def _current_umask() -> int:
    """The process umask; read from /proc where it can be, as setting it to read it races with threads."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The mode `open(path, "w")` would leave: the existing file's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_current_umask()


def atomic_write(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` via a temporary file in the same folder and a rename.

    The file gets the mode a plain write would give it (mkstemp's temporary file is private, 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pair(path: str | Path) -> tuple[Path, Path]:
    base = Path(path).with_suffix("") if Path(path).suffix in (".json", ".npz") else Path(path)
    return base.with_suffix(".json"), base.with_suffix(".npz")


def write_output(path: Path, data: bytes, what: str) -> None:
    """atomic_write, with an unwritable destination reported as an OptionError naming `what` and the path."""
    try:
        atomic_write(path, data)
    except OSError as e:
        raise OptionError(f"{what}: cannot write {path}: {e.strerror or e}") from None


def save(graph: Graph, path: str | Path) -> tuple[Path, Path]:
    """Writes `<path>.json` (the graph) and `<path>.npz` (its parameters) as one unit.

    The .json records the sha256 of the .npz it belongs to, and both are replaced under an exclusive lock,
    so `load` never pairs one save's graph with another's weights: a torn pair is refused, naming both."""
    import io

    from convc.locks import file_lock

    json_path, npz_path = _pair(path)
    buf = io.BytesIO()
    np.savez(buf, **graph.params)
    blob = buf.getvalue()
    doc = graph_to_dict(graph)
    doc["params"] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"save: cannot create the folder {json_path.parent}: {e.strerror or e}") from None
    with file_lock(json_path.parent):
        write_output(npz_path, blob, "save")
        write_output(json_path, json.dumps(doc, indent=1).encode(), "save")
    return json_path, npz_path


def read_bounded(path: str | Path, *, what: str, limit: int = MAX_TEXT_FILE_BYTES) -> str:
    """The text of a regular file of at most `limit` bytes; OptionError naming `what` otherwise.

    OSError (missing, unreadable) passes through for the caller to word."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise OptionError(f"{what}: {path} is not a regular file")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OptionError(f"{what}: {path} is larger than {limit >> 20} MiB; not a convc file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OptionError(f"{what}: {path} is not UTF-8 text") from None


def _read_pair(json_path: Path, npz_path: Path) -> tuple[Any, bytes]:
    from convc.locks import file_lock

    with file_lock(json_path.parent, shared=True):
        try:
            text = read_bounded(json_path, what="load")
            blob = npz_path.read_bytes()
        except OSError as e:
            raise FileFormatError(f"cannot load graph from {e.filename or json_path}: "
                                  f"{e.strerror or e}") from None
    try:
        return json.loads(text), blob
    except ValueError as e:
        raise FileFormatError(f"cannot load graph from {json_path}: corrupt JSON ({e})") from None


def _read_params(npz_path: Path, blob: bytes) -> dict[str, np.ndarray]:
    import io
    import zipfile
    import zlib

    try:
        archive = np.load(io.BytesIO(blob), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise FileFormatError(f"cannot load graph: {npz_path} holds one array (.npy), not a parameter "
                                  f"archive (.npz)")
        with archive as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise FileFormatError(f"cannot load graph: {npz_path} is not a readable parameter archive "
                              f"({e or type(e).__name__})") from None


def load(path: str | Path, *, retries: int = 8) -> Graph:
    """Reads what `save` wrote and verifies it; a corrupt, foreign or mismatched pair is a FileFormatError.

    A pair whose hashes disagree is read again a few times (a save may be replacing it right now) and then
    refused. Files from before the hash was recorded load without that check."""
    json_path, npz_path = _pair(path)
    for attempt in range(retries + 1):
        data, blob = _read_pair(json_path, npz_path)
        recorded = data.get("params") if isinstance(data, dict) else None
        expected = recorded.get("sha256") if isinstance(recorded, dict) else None
        if expected is None or hashlib.sha256(blob).hexdigest() == expected:
            break
        time.sleep(0.02 * (attempt + 1))
    else:
        raise FileFormatError(f"cannot load graph: {npz_path} is not the parameter file {json_path} was saved "
                              f"with (sha256 differs): a torn save or mixed files; save the network again")
    params = _read_params(npz_path, blob)
    try:
        g = graph_from_dict(data, params)
        missing = [n.name for n in g.nodes("param") if n.name not in params]
        if missing:
            raise FileFormatError(f"parameters missing from {npz_path}: {', '.join(missing)}")
        g.verify()
    except (FileFormatError, GraphError) as e:
        raise FileFormatError(f"cannot load graph from {json_path}: {e}") from None
    return g
