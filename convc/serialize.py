"""JSON form of a graph (exact round trip) and saving a graph with its parameters (.json + .npz).

Files are written atomically (temporary file, then rename), so a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from convc.errors import ConvcError, GraphError
from convc.ir import Graph, Node
from convc.types import TensorType

FORMAT = "convc-graph"
VERSION = 1


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


def graph_from_dict(data: dict[str, Any], params: dict[str, np.ndarray] | None = None) -> Graph:
    """Rebuilds a graph; parameters come from `params`, or zeros of each param node's shape."""
    if data.get("format") != FORMAT:
        raise GraphError(f"not a convc graph (format {data.get('format')!r}, expected {FORMAT!r})")
    g = Graph(data["name"])
    try:
        for nd in data["nodes"]:
            t = TensorType(tuple(nd["type"]["shape"]), nd["type"]["dtype"])
            node = Node(nd["name"], nd["op"], tuple(nd["inputs"]),
                        {k: _from_json(v) for k, v in nd["attrs"].items()}, t)
            g.add(node)
            if node.op == "param":
                arr = params.get(node.name) if params is not None else None
                g.params[node.name] = arr if arr is not None else np.zeros(t.shape, t.dtype)
        g.outputs = list(data["outputs"])
    except (KeyError, TypeError) as e:
        raise GraphError(f"malformed graph JSON: missing or bad field {e}") from None
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


def save(graph: Graph, path: str | Path) -> tuple[Path, Path]:
    """Writes `<path>.json` (the graph) and `<path>.npz` (its parameters)."""
    import io

    base = Path(path).with_suffix("") if Path(path).suffix in (".json", ".npz") else Path(path)
    buf = io.BytesIO()
    np.savez(buf, **graph.params)
    atomic_write(base.with_suffix(".npz"), buf.getvalue())
    atomic_write(base.with_suffix(".json"), to_json(graph).encode())
    return base.with_suffix(".json"), base.with_suffix(".npz")


def load(path: str | Path) -> Graph:
    """Reads what `save` wrote and verifies it."""
    base = Path(path).with_suffix("") if Path(path).suffix in (".json", ".npz") else Path(path)
    try:
        text = base.with_suffix(".json").read_text()
        with np.load(base.with_suffix(".npz")) as z:
            params = {k: z[k] for k in z.files}
    except OSError as e:
        raise ConvcError(f"cannot load graph from {base}: {e}") from None
    except ValueError as e:
        raise ConvcError(f"cannot load graph from {base}: corrupt parameter file ({e})") from None
    try:
        g = from_json(text, params)
    except json.JSONDecodeError as e:
        raise ConvcError(f"cannot load graph from {base}: corrupt JSON ({e})") from None
    missing = [n.name for n in g.nodes("param") if n.name not in params]
    if missing:
        raise ConvcError(f"cannot load graph from {base}: parameters missing from the .npz: {missing}")
    g.verify()
    return g
