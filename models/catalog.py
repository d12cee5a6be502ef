"""The model catalog: each family module registers its models here; `get` builds one by name.

    register_model("resnet18", "ResNet-18 (He et al. 2015), torchvision v1.5 layout", build_resnet)
    net = get("resnet18", num_classes=10, input_size=64)

A builder takes the model's name first (so one function serves a family's variants) and its options as
keyword arguments with defaults; those defaults are the options the catalog advertises and accepts.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from convc.dsl import Network, Value
from convc.errors import DefinitionError, OptionError
from convc.types import check_dtype

ModelBuilder = Callable[..., Network]


@dataclass(frozen=True)
class ModelInfo:
    """One catalog entry: a name, a one-line description and the builder behind it."""

    name: str
    description: str
    builder: ModelBuilder
    imported: bool = False  # built by importing another framework's model (slow; listed, not summarized)

    @property
    def options(self) -> dict[str, Any]:
        """Option name -> default value, in the builder's order (its first parameter is the name)."""
        params = list(inspect.signature(self.builder).parameters.values())[1:]
        return {p.name: p.default for p in params}

    def options_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


_MODELS: dict[str, ModelInfo] = {}
# Whether the network being built by `get` draws its weights (False: structure only, for summaries).
_INIT: ContextVar[bool] = ContextVar("convc_models_init", default=True)


def register_model(name: str, description: str, builder: ModelBuilder, imported: bool = False) -> None:
    """Adds a model; the builder is called as `builder(name, **options)`."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")  # a bug in convc, not a user error
    _MODELS[name] = ModelInfo(name, description, builder, imported)


def names(imported: bool = False) -> list[str]:
    """Every model name convc writes itself, in catalog order (family by family); with `imported`, also
    those built by importing another framework's model (torchvision's, by name)."""
    return [n for n, m in _MODELS.items() if imported or not m.imported]


def catalog() -> list[ModelInfo]:
    return list(_MODELS.values())


def info(name: str) -> ModelInfo:
    """The catalog entry of `name`, matched case-insensitively (ResNet18 is resnet18); an unknown name
    raises an OptionError with the closest names ("did you mean") and every known one."""
    if name in _MODELS:
        return _MODELS[name]
    def folded(text: str) -> str:  # ResNet-18, resnet_18 and RESNET18 all fold to resnet18
        return "".join(ch for ch in text.lower() if ch.isalnum())

    by_folded = {folded(known): known for known in _MODELS}
    if folded(name) in by_folded:
        return _MODELS[by_folded[folded(name)]]
    close = difflib.get_close_matches(folded(name), list(by_folded), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(by_folded[c]) for c in close)}? " if close else ""
    raise OptionError(f"unknown model {name!r}; {hint}known models: {', '.join(names())} (and torchvision's "
                      f"CNNs by name: convc models lists them)")


def describe(name: str) -> str:
    """The model's one-line description, for the `convc models` table."""
    return info(name).description


def get(name: str, *, init: bool = True, **options: Any) -> Network:
    """Builds model `name` with `options`; unknown names and options raise an OptionError listing
    what is accepted, and an input too small for the network names the layer it breaks.
    `init=False` skips drawing weights (all parameters read-only zeros): instant, for summaries."""
    entry = info(name)
    name = entry.name  # the catalog's spelling, whatever case the caller used
    accepted = entry.options
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise OptionError(f"model {name!r} has no option {', '.join(unknown)}; it accepts "
                          f"{entry.options_text()}")
    for key, value in options.items():
        _check_common_option(name, key, value)
    token = _INIT.set(init)
    try:
        return entry.builder(name, **options)
    except DefinitionError as e:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "default options"
        raise OptionError(f"model {name!r} cannot be built with {given}: {e}") from None
    finally:
        _INIT.reset(token)


# ---------------------------------------------------------------------------- option checks
def _check_common_option(model: str, key: str, value: Any) -> None:
    """Checks the options every family shares, so each builder need not repeat it."""
    if key in ("num_classes", "batch"):
        positive_int(model, key, value)
    elif key == "seed":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise OptionError(f"model {model!r}: seed={value!r} must be a non-negative int")
    elif key == "dtype":
        check_dtype(value, what=f"model {model!r}: dtype")


def positive_int(model: str, option: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise OptionError(f"model {model!r}: {option}={value!r} must be a positive int")
    return value


def positive_number(model: str, option: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise OptionError(f"model {model!r}: {option}={value!r} must be a positive number")
    return float(value)


def example_shape(model: str, input_size: int | Sequence[int], channels: int,
                  spatial_dims: int = 2) -> tuple[int, ...]:
    """The per-example input shape (C, *spatial) from `input_size`: an int (every spatial axis),
    the spatial sizes, or the full (C, *spatial)."""
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        dims: tuple[Any, ...] = (channels,) + (input_size,) * spatial_dims
    elif isinstance(input_size, Sequence) and len(input_size) == spatial_dims:
        dims = (channels,) + tuple(input_size)
    elif isinstance(input_size, Sequence) and len(input_size) == spatial_dims + 1:
        dims = tuple(input_size)
    else:
        dims = ()
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        axes = "x".join(["S"] * spatial_dims)
        raise OptionError(f"model {model!r}: input_size={input_size!r} must be a positive int (a {axes} "
                          f"input), {spatial_dims} spatial sizes, or the full ({channels}, ...) shape of "
                          f"one example")
    return dims


def new_network(model: str, batch: int, example: tuple[int, ...], seed: int,
                dtype: str) -> tuple[Network, Value]:
    """A Network named after the model and its input value of shape (batch, *example)."""
    net = Network(model, seed=seed, init=_INIT.get())
    return net, net.input((batch,) + example, dtype=check_dtype(dtype))
