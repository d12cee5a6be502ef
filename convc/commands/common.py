"""Helpers the CLI commands share: model specs, compile options, number formatting, output."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from convc.dsl import Network
from convc.errors import OptionError
from convc.files import check_output_path
from convc.types import check_dtype
from convc.pass_manager import DEFAULT_PASS_TIMEOUT

console = Console(highlight=False)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a zoo model name (see `convc models`), a .onnx file, module.py:factory, or "
                   "a graph saved with net.save (.json beside its .npz)")
    p.add_argument("--batch", action=BatchAction, default=None, metavar="N|MIN..MAX",
                   help="batch size (default 1); compile and run also take a range like 1..64: one compile "
                        "that runs every batch size up to MAX (buckets: the powers of two in the range)")
    p.add_argument("--input", default=None, metavar="C,H,W",
                   help="input shape without the batch axis (spatial size only also works: 64 or 64,64)")


def dtype_arg(text: str) -> str:
    """argparse type of --dtype: the canonical name of any alias (fp16, half, bf16, fp32, float, double)."""
    try:
        return check_dtype(text)
    except OptionError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_dtype_arg(p: argparse.ArgumentParser, default: str = "float32") -> None:
    p.add_argument("--dtype", type=dtype_arg, default=default, metavar="DTYPE",
                   help=f"compute dtype (default {default}): float32, float16, bfloat16 or float64; also "
                        f"fp32/float, fp16/half, bf16, fp64/double")


def check_backend_dtype(backend: str, dtype: str) -> None:
    """--backend and --dtype together: an OptionError (exit 2) when the backend cannot compute in dtype."""
    from convc.registry import get_backend

    supported = get_backend(backend).capabilities.dtypes
    if check_dtype(dtype) not in supported:
        raise OptionError(f"--dtype {dtype}: backend '{backend}' computes in {', '.join(supported)}; choose "
                          f"one of those or another --backend (see `convc backends`)")


def add_backend_arg(p: argparse.ArgumentParser, default: str = "numpy", what: str = "") -> None:
    p.add_argument("--backend", default=default, metavar="NAME",
                   help=f"{what or 'backend to compile for'} (default {default}; see `convc backends`)")


def add_compile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=(0, 1, 2, 3),
                   help="optimization level: 0 none, 1 cleanup + BN folding, 2 + fusion and algorithm "
                        "choice (default), 3 algorithms chosen by measurement")
    p.add_argument("--passes", default=None, metavar="LIST", help="comma-separated pass list replacing the "
                   "default pipeline; '+name' adds a pass to it (see `convc passes`)")
    p.add_argument("--disable", default="", metavar="LIST",
                   help="comma-separated passes to leave out (a broken plugin's too)")
    p.add_argument("--algo", action="append", default=None, metavar="LAYER=ALGO",
                   help="pin a conv layer's algorithm (repeatable): features.0=direct")
    p.add_argument("--plan", default=None, metavar="FILE", help="follow an algorithm plan file")
    p.add_argument("--pass-timeout", type=float, default=DEFAULT_PASS_TIMEOUT, metavar="SECONDS",
                   help=f"stop the compile when one pass runs longer (default {DEFAULT_PASS_TIMEOUT:g}; 0: no limit)")
    p.add_argument("--no-winograd", action="store_true",
                   help="never choose Winograd convolution (exact NaN/inf positions; see docs/numerics.md)")
    p.add_argument("--plan-mismatch", default="error", choices=("error", "remeasure"),
                   help="a --plan file made for another model, input shape, dtype, backend or device: "
                        "error (default) or remeasure (choose again with a warning and rewrite the file)")
    p.add_argument("--check-numerics", action="store_true",
                   help="after each pass compare with the original graph in float64; stop at the first "
                        "pass that breaks the budget")


class BatchAction(argparse.Action):
    """--batch N sets `batch`; --batch MIN..MAX sets `batch` to MIN and `batch_range` to (MIN, MAX)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from convc.batching import parse_batch_range

        try:
            low, high = parse_batch_range(str(values))
        except OptionError as e:
            parser.error(str(e))
        namespace.batch = low
        namespace.batch_range = (low, high) if ".." in str(values) else None


def batch_options(args: argparse.Namespace) -> dict[str, int]:
    """max_batch / min_batch for convc.compile when --batch gave a range."""
    batch_range = getattr(args, "batch_range", None)
    return {} if batch_range is None else {"min_batch": batch_range[0], "max_batch": batch_range[1]}


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def compile_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.plan and not Path(args.plan).exists():  # it will be written: say now if it cannot be
        check_output_path(args.plan, "--plan")
    return {
        "opt_level": args.opt_level,
        "passes": split_list(args.passes) or None,
        "disable": split_list(args.disable),
        "algo": args.algo,
        "plan": args.plan,
        "plan_mismatch": args.plan_mismatch,
        "check_numerics": True if args.check_numerics else "plugins",
        "pass_timeout": args.pass_timeout,
        "pass_options": {"choose_conv_algo": {"winograd": False}} if args.no_winograd else None,
    }


def seed(text: str) -> int:
    """argparse type of --seed: a non-negative integer (NumPy's generators take no negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; seeds are integers from 0")
    return value


def parse_input(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        dims = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise OptionError(f"--input {text!r}: expected integers like 3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise OptionError(f"--input {text!r}: expected positive integers like 3,224,224")
    return dims


def load_model(spec: str, batch: int | None = None, input_shape: tuple[int, ...] | None = None,
               init: bool = True) -> Network:
    """A zoo name, a .onnx path, module.py:factory or a saved graph (tiny.json, or the stem tiny when
    tiny.json and tiny.npz exist) -> a Network (`init=False`: zoo structure only)."""
    if batch is not None and batch <= 0:
        raise OptionError(f"--batch {batch}: must be a positive integer")
    from convc.model_files import load_saved_graph, saved_graph_path

    if saved_graph_path(spec) is not None:
        return load_saved_graph(spec, batch, input_shape)
    if spec.lower().endswith(".convc"):
        from convc.artifact import saved_network

        return saved_network(spec, batch)
    if spec.endswith(".onnx") or ".py:" in spec:
        from convc import frontends

        path = spec.split(".py:")[0] + ".py" if ".py:" in spec else spec
        if not Path(path).is_file():  # a command-line mistake (exit 2), before any import
            raise OptionError(f"model file '{path}' does not exist")

        loader = getattr(frontends, "load_model", None)
        if loader is None:
            raise OptionError(f"cannot load {spec!r}: the frontends are not available in this build")
        return loader(spec, batch=batch, input_shape=input_shape)
    from convc import models

    options: dict[str, Any] = {}
    if batch is not None:
        options["batch"] = batch
    if input_shape is not None:
        options["input_size"] = input_shape[0] if len(input_shape) == 1 else input_shape
    return models.get(spec, init=init, **options)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=1) + "\n")


def human(n: float, unit: str = "") -> str:
    """Three significant digits and a prefix, short enough for an 80-column table: human(118_013_952) ==
    '118M', human(3_211_264, 'B') == '3.21MB'."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.{2 if abs(v) < 10 else 1 if abs(v) < 100 else 0}f}{suffix}{unit}"
    return f"{n:g}{unit}"
