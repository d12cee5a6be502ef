"""The conv algorithm plan: per layer, the algorithm, why, and the numerical budget it answers to.

    plan = ctx.results["plan"]              # after choose_conv_algo
    plan.algo_of("features.0")              # 'im2col'
    Plan.from_json(plan.to_json()) == plan  # exact round trip
    plan.to_table_rows()                    # what `convc plan` prints
    plan.mismatches(other)                  # ['input shapes 1x3x64x64 vs 1x3x224x224', 'dtype ...']

A plan records what it was made for: the model (graph name and a hash of its structure at the point the
algorithm pass sees it), input shapes, dtype, backend, device and the convc version. A plan file is
followed only by a compile of that same model, shapes, dtype, backend and device (passes/conv_algo.py).

Plans are cached per (backend, device, dtype, mode) in $CONVC_CACHE_DIR (default ~/.cache/convc),
one entry per layer signature (shapes + attributes), so a second compile replays the same choices
without measuring again. A cache file that does not parse or check out is rebuilt, never trusted.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convc import files
from convc.errors import OptionError
from convc.ir import Graph, Node
from convc.serialize import write_output

PLAN_FORMAT = "convc-plan"
CACHE_FORMAT = "convc-plan-cache"
VERSION = 2  # 2: plans record the model, input shapes and convc version they were made for
MATCHED_FIELDS = ("model", "model_hash", "input_shapes", "dtype", "backend", "device")


@dataclass(frozen=True)
class LayerPlan:
    """One conv layer's choice. `times` are seconds per candidate (modelled or measured; empty when the
    user pinned the layer); `errors` are measured relative errors per candidate (-O3 only)."""

    layer: str
    op: str
    signature: str
    algo: str
    source: str  # "modelled", "measured", "pinned" (--algo) or "plan file"
    times: dict[str, float] = field(default_factory=dict)
    budget: float = 0.0
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        if not self.times:
            return self.source
        ranked = sorted(self.times.items(), key=lambda kv: kv[1])
        return f"{self.source}: " + ", ".join(f"{a} {format_seconds(t)}" for a, t in ranked)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "op": self.op, "signature": self.signature, "algo": self.algo,
                "source": self.source, "times": dict(self.times), "budget": self.budget,
                "errors": dict(self.errors)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerPlan:
        times = {str(k): float(v) for k, v in d.get("times", {}).items()}
        errors = {str(k): float(v) for k, v in d.get("errors", {}).items()}
        return cls(str(d["layer"]), str(d["op"]), str(d["signature"]), str(d["algo"]), str(d["source"]),
                   times, float(d["budget"]), errors)


@dataclass(frozen=True)
class Plan:
    """Every conv layer's algorithm for one backend, device and dtype."""

    backend: str
    device: str
    dtype: str
    mode: str  # "model" (analytical cost model) or "measure" (-O3: timed on the backend)
    layers: tuple[LayerPlan, ...] = ()
    model: str = ""  # the graph's name
    model_hash: str = ""  # structure_hash of the graph the algorithm pass saw
    input_shapes: tuple[tuple[int, ...], ...] = ()
    convc_version: str = ""

    def describe(self) -> str:
        """'model 'tiny' (structure 3f2a...), input 1x3x64x64, float32, backend numpy on cpu'."""
        return (f"model '{self.model}' (structure {self.model_hash[:12]}), input "
                f"{format_shapes(self.input_shapes)}, {self.dtype}, backend {self.backend} on {self.device}")

    def mismatches(self, other: Plan) -> list[str]:
        """What differs between the compile `self` was made for and the one `other` describes."""
        out = []
        for name in MATCHED_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                if name == "model_hash" and self.input_shapes != other.input_shapes:
                    continue  # the shapes are in the hash: name the cause only
                if name == "input_shapes":
                    mine, theirs = format_shapes(mine), format_shapes(theirs)
                if name == "model_hash":
                    name, mine, theirs = "model structure", mine[:12], theirs[:12]
                out.append(f"{name.replace('_', ' ')} {mine or '?'} (this compile: {theirs})")
        return out

    def algo_of(self, layer: str) -> str | None:
        return next((lp.algo for lp in self.layers if lp.layer == layer), None)

    def layer(self, name: str) -> LayerPlan | None:
        return next((lp for lp in self.layers if lp.layer == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "version": VERSION, "convc_version": self.convc_version,
                "model": self.model, "model_hash": self.model_hash,
                "input_shapes": [list(s) for s in self.input_shapes], "backend": self.backend,
                "device": self.device, "dtype": self.dtype, "mode": self.mode,
                "layers": [lp.to_dict() for lp in self.layers]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        """Raises ValueError when `d` is not a plan, OutdatedPlan when an older convc wrote it."""
        if not isinstance(d, dict) or d.get("format") != PLAN_FORMAT:
            raise ValueError(f"not a convc plan (format {d.get('format') if isinstance(d, dict) else d!r})")
        if d.get("version") != VERSION:
            raise OutdatedPlan(f"plan format version {d.get('version')!r}, but this convc reads version "
                               f"{VERSION}: an older convc wrote it without the model, input shapes, dtype, "
                               f"backend and device it was made for")
        try:
            layers = tuple(LayerPlan.from_dict(x) for x in d["layers"])
            shapes = tuple(tuple(int(v) for v in s) for s in d["input_shapes"])
            return cls(str(d["backend"]), str(d["device"]), str(d["dtype"]), str(d["mode"]), layers,
                       str(d["model"]), str(d["model_hash"]), shapes, str(d["convc_version"]))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"malformed plan: missing or bad field {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e}") from None

    def save(self, path: str | Path) -> None:
        write_output(Path(path), self.to_json().encode(), "--plan")

    def to_table_rows(self) -> list[dict[str, str]]:
        """One row per layer for `convc plan`: layer, op, algorithm, why, numerical budget."""
        return [{"layer": lp.layer, "op": lp.op, "algorithm": lp.algo, "reason": lp.reason,
                 "budget": f"{lp.budget:.0e} ({self.dtype})"} for lp in self.layers]


class OutdatedPlan(ValueError):
    """A plan in an older format (without the metadata that says what it was made for)."""


class OutdatedPlanFile(OptionError):
    """A --plan file in an older format."""


def format_shapes(shapes: tuple[tuple[int, ...], ...]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes) or "?"


def structure_hash(g: Graph) -> str:
    """SHA-256 over every operation's name, op, operands, attributes (the conv algorithm aside) and
    type, and the outputs: equal for the same model at the same shapes, whatever its weights or
    algorithms. Parameters count only as operand slots (their shapes follow from the attributes), so
    passes that rewrite weights after the algorithm choice (winograd_weights: G g Gᵀ as the weight,
    renamed and reshaped) leave the hash as the plan recorded it."""
    h = hashlib.sha256()
    for n in g.nodes():
        if n.op == "param":
            continue
        attrs = {k: v for k, v in sorted(n.attrs.items()) if k not in ("algo", "weight_transformed")}
        operands = tuple("<param>" if g.node(i).op == "param" else i for i in n.inputs)
        h.update(repr((n.name, n.op, operands, attrs, n.type.shape, n.type.dtype)).encode())
    h.update(repr(tuple(g.outputs)).encode())
    return h.hexdigest()


def load_plan_file(path: str | Path) -> Plan:
    """A plan the user asked to follow (--plan FILE); a bad file is an OptionError naming it."""
    try:
        return Plan.from_json(files.read_bounded(path, what="--plan"))
    except OSError as e:
        raise OptionError(f"--plan {path}: cannot read the plan file ({e.strerror})") from None
    except OutdatedPlan as e:
        raise OutdatedPlanFile(f"--plan {path}: {e}; delete it and let compile write it again, or rewrite it "
                               f"with --plan-mismatch remeasure") from None
    except ValueError as e:
        raise OptionError(f"--plan {path}: {e}; write one with `convc plan MODEL --plan {path}` (after "
                          f"deleting it) or let compile create it by naming a file that does not exist yet"
                          ) from None


def format_seconds(t: float) -> str:
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def signature(node: Node, g: Graph) -> str:
    """What a conv's cost depends on: operand shapes, attributes (algo aside) and the epilogue."""
    acts = [g.node(a).type for a in g.activation_inputs(node)]
    attrs = {k: v for k, v in sorted(node.attrs.items()) if k != "algo"}
    return f"{node.op} in={'x'.join(map(str, acts[0].shape))} residuals={len(acts) - 1} " + \
        " ".join(f"{k}={v}" for k, v in attrs.items()).replace(" ", "")


def cache_dir() -> Path:
    return files.cache_dir()


class PlanCache:
    """Per-signature choices for one (backend, device, dtype, mode), in one JSON file."""

    def __init__(self, backend: str, device: str, dtype: str, mode: str, version: int,
                 extra: dict[str, Any] | None = None) -> None:
        self.key = {"backend": backend, "device": device, "dtype": dtype, "mode": mode, "version": version,
                    **(extra or {})}
        safe = "-".join(str(v).replace("/", "_").replace(" ", "_") for v in self.key.values())
        self.path = cache_dir() / "plans" / f"{safe}.json"
        self.entries: dict[str, dict[str, Any]] = {}
        self.on_disk: dict[str, Any] = {}  # what the file held; save() merges only what differs from it
        self.problem: str | None = None  # why the file on disk was not trusted
        self.dirty = False

    def load(self) -> PlanCache:
        if not self.path.exists():
            return self
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != CACHE_FORMAT or data.get("key") != self.key:
                raise ValueError("format or key differs")
            entries = data["entries"]
            if not isinstance(entries, dict):
                raise ValueError("entries is not a mapping")
            self.entries, self.on_disk = dict(entries), dict(entries)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.problem = f"plan cache {self.path} is corrupt ({e}); rebuilding it"
            self.dirty = True  # overwrite it with what this run finds
        return self

    def get(self, sig: str, candidates: tuple[str, ...]) -> dict[str, Any] | None:
        """A cached entry, if it is well-formed and was made for exactly these candidates."""
        e = self.entries.get(sig)
        try:
            ok = (isinstance(e, dict) and tuple(e["candidates"]) == candidates and e["algo"] in candidates
                  and set(e["times"]) <= set(candidates)
                  and all(isinstance(t, (int, float)) for t in e["times"].values()))
        except (KeyError, TypeError):
            ok = False
        return e if ok else None

    def put(self, sig: str, candidates: tuple[str, ...], algo: str, times: dict[str, float],
            errors: dict[str, float]) -> None:
        self.entries[sig] = {"candidates": list(candidates), "algo": algo, "times": times, "errors": errors}
        self.dirty = True

    def save(self) -> str | None:
        """Writes the file if anything changed; returns why it could not, if it could not."""
        if not self.dirty:
            return None
        mine = {k: v for k, v in self.entries.items() if self.on_disk.get(k) != v}

        def merge(current: Any) -> dict[str, Any]:  # racing compiles keep each other's entries
            ok = (isinstance(current, dict) and current.get("format") == CACHE_FORMAT
                  and current.get("key") == self.key and isinstance(current.get("entries"), dict))
            return {"format": CACHE_FORMAT, "key": self.key, "entries": {**(current["entries"] if ok else {}),
                                                                          **mine}}
        try:
            self.on_disk = dict(files.update_json(self.path, merge)["entries"])
        except OSError as e:  # a read-only home must not stop a compile; the plan is merely not cached
            return f"plan cache {self.path} not written: {e}"
        self.dirty = False
        return None
