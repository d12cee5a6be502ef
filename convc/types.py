"""Tensor types: a static shape and a dtype name."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convc.errors import OptionError

# dtype name -> short name used by the printer
DTYPES: dict[str, str] = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
SHORT_TO_DTYPE = {v: k for k, v in DTYPES.items()}
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def check_dtype(dtype: str, *, what: str = "dtype", allowed: tuple[str, ...] = tuple(DTYPES)) -> str:
    """Return the canonical dtype name or raise an OptionError listing the allowed ones."""
    name = str(dtype).replace("torch.", "")
    name = SHORT_TO_DTYPE.get(name, name)
    if name not in allowed:
        raise OptionError(f"{what} {dtype!r} is not supported; choose one of {', '.join(allowed)}")
    return name


def numpy_dtype(dtype: str) -> np.dtype:
    """The NumPy dtype that holds values of `dtype` (bfloat16 has none: float32 holds it)."""
    if dtype == "bfloat16":
        return np.dtype(np.float32)
    return np.dtype(dtype)


@dataclass(frozen=True)
class TensorType:
    """Static type of a value: `TensorType((1, 64, 112, 112), "float32")`."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * ITEMSIZE[self.dtype]

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def __str__(self) -> str:
        return f"{DTYPES.get(self.dtype, self.dtype)}[{','.join(str(d) for d in self.shape)}]"
