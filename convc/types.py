"""Tensor types: a static shape and a dtype name."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convc.errors import OptionError

# dtype name -> short name used by the printer
DTYPES: dict[str, str] = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
SHORT_TO_DTYPE = {v: k for k, v in DTYPES.items()}
# Other names people write for the same dtypes (torch's, NumPy's, C's); matched case-insensitively.
DTYPE_ALIASES: dict[str, str] = {
    **SHORT_TO_DTYPE, **{name: name for name in DTYPES},
    "fp16": "float16", "half": "float16",
    "bf16": "bfloat16",
    "fp32": "float32", "float": "float32", "single": "float32",
    "fp64": "float64", "double": "float64",
}
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def check_dtype(dtype: str, *, what: str = "dtype", allowed: tuple[str, ...] = tuple(DTYPES)) -> str:
    """The canonical dtype name of `dtype` or its aliases (fp16, half, bf16, fp32, float, double, f64,
    torch.float16, ...), or an OptionError listing the allowed ones: check_dtype("half") == "float16"."""
    name = str(dtype).strip().lower().replace("torch.", "")
    name = DTYPE_ALIASES.get(name, name)
    if name not in allowed:
        raise OptionError(f"{what} {dtype!r} is not supported; choose one of {', '.join(allowed)} "
                          f"(aliases: fp16/half, bf16, fp32/float, fp64/double)")
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
