"""What machine a benchmark ran on, and a table of known GPUs' peak rates (the roofs of a roofline).

    machine = describe_machine()          # GPU or CPU name, driver, torch / triton versions, date
    profile = find_profile(machine.device_name)   # None for a GPU not in the table
    peaks = profile.peaks("float16", source="measured")

Datasheet figures are the vendor's dense (no sparsity) tensor-core rates; "measured" figures were taken on
the project's lent machines (REFERENCE.md, KINDS.md): an 8192^3 bf16 matmul on random data and a large
device-to-device copy counting bytes read plus written. Both are leads: `convc bench` measures its own
roofs at start unless told to use this table.
"""
from __future__ import annotations

import ctypes
import datetime
import functools
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from convc.errors import OptionError


def format_rate(value: float, unit: str) -> str:
    """989e12, 'FLOP/s' -> '989 TFLOP/s'; 1.53e10 -> '15.3 GFLOP/s' (three significant digits)."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


@dataclass(frozen=True)
class Peaks:
    """The two roofs: arithmetic rate (FLOP/s) and memory bandwidth (bytes/s), and where they came from."""

    flops_per_s: float
    bytes_per_s: float
    source: str

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per byte above which a kernel is compute-bound on this device."""
        return self.flops_per_s / self.bytes_per_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ridge_intensity": self.ridge_intensity}

    def __str__(self) -> str:
        return f"{format_rate(self.flops_per_s, 'FLOP/s')}, {format_rate(self.bytes_per_s, 'B/s')}"


@dataclass(frozen=True)
class DeviceProfile:
    """One GPU model. `flops` maps a dtype to its datasheet rate; fp16 and bf16 share the tensor-core rate."""

    name: str
    match: str  # a substring of torch.cuda.get_device_name() that identifies the part
    flops: dict[str, float]
    bandwidth: float
    measured_flops: dict[str, float]
    measured_bandwidth: float | None

    def peaks(self, dtype: str, source: str = "measured") -> Peaks:
        """The roofs for `dtype`: the measured figures where the table has them, else the datasheet's."""
        if dtype not in self.flops:
            raise OptionError(f"device profile '{self.name}' has no peak for dtype {dtype!r}; it knows "
                              f"{', '.join(self.flops)}")
        if source == "measured" and dtype in self.measured_flops and self.measured_bandwidth:
            return Peaks(self.measured_flops[dtype], self.measured_bandwidth,
                         f"{self.name} profile, measured on a lent machine")
        return Peaks(self.flops[dtype], self.bandwidth, f"{self.name} profile, datasheet")


def _tensor_core(dense_fp16: float, fp32: float, fp64: float) -> dict[str, float]:
    return {"float16": dense_fp16, "bfloat16": dense_fp16, "float32": fp32, "float64": fp64}


# Order matters: the first profile whose `match` occurs in the device name wins ("H100 PCIe" before "H100").
PROFILES: tuple[DeviceProfile, ...] = (
    DeviceProfile("H100 PCIe", "H100 PCIe", _tensor_core(756e12, 51e12, 26e12), 2.0e12, {}, None),
    DeviceProfile("H100 SXM (80GB HBM3)", "H100", _tensor_core(989e12, 67e12, 34e12), 3.35e12,
                  {"float16": 798e12, "bfloat16": 798e12}, 3.0e12),
    DeviceProfile("H200", "H200", _tensor_core(989e12, 67e12, 34e12), 4.8e12,
                  {"float16": 788e12, "bfloat16": 788e12}, 4.3e12),
    DeviceProfile("A100 SXM (80GB)", "A100", _tensor_core(312e12, 19.5e12, 9.7e12), 2.039e12, {}, None),
)


def find_profile(device_name: str) -> DeviceProfile | None:
    for profile in PROFILES:
        if profile.match.lower() in device_name.lower():
            return profile
    return None


@dataclass(frozen=True)
class MachineInfo:
    """Where numbers were taken: enough to reproduce or to refuse to compare them."""

    device_kind: str  # "cuda" or "cpu"
    device_name: str
    driver: str
    cuda: str
    cudnn: str
    torch: str
    triton: str
    numpy: str
    python: str
    date: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or the platform's word for it)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _nvidia_driver() -> str:
    """The driver version from nvidia-smi (torch does not report it); 'n/a' where there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "n/a"
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "n/a"
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else "n/a"


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:  # an absent or broken optional package is a fact to report, not an error
        return "not installed"


# "0" runs the NumPy backend's plain NumPy kernels even where numba is installed (backends/numpy_ref/jit.py).
NUMBA_SWITCH = "CONVC_NUMBA"


@functools.cache
def _numba_imports() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def compiled_cpu_kernels() -> bool:
    """Whether the NumPy backend runs its compiled (numba) kernels here: numba imports and CONVC_NUMBA is
    not "0" (read at each call). Cost models price the kernels that will run, so they ask this too."""
    return os.environ.get(NUMBA_SWITCH, "1") != "0" and _numba_imports()


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def describe_machine() -> MachineInfo:
    """The GPU (if torch sees one) or the CPU, the driver and the library versions, with today's date."""
    import numpy as np

    date = datetime.date.today().isoformat()
    torch_version = _version("torch")
    if cuda_available():
        import torch

        cudnn = torch.backends.cudnn.version()
        return MachineInfo("cuda", torch.cuda.get_device_name(), _nvidia_driver(), str(torch.version.cuda),
                           str(cudnn) if cudnn else "n/a", torch_version, _version("triton"), np.__version__,
                           platform.python_version(), date)
    return MachineInfo("cpu", cpu_name(), "n/a", "n/a", "n/a", torch_version, _version("triton"),
                       np.__version__, platform.python_version(), date)


BLAS_THREAD_SYMBOLS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                       "openblas_get_num_threads64_", "openblas_get_num_threads", "MKL_Get_Max_Threads")
THREAD_ENV_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def _loaded_blas_libraries() -> list[str]:
    """Paths of the BLAS shared libraries this process has loaded (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() or "mkl_rt" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def blas_threads() -> int:
    """How many threads NumPy's BLAS uses now: asked of the loaded OpenBLAS/MKL itself where it can be,
    else read from OPENBLAS_NUM_THREADS / MKL_NUM_THREADS / OMP_NUM_THREADS, else the CPU count.

        blas_threads()    # 1 under OPENBLAS_NUM_THREADS=1
    """
    import numpy  # noqa: F401  (loads the BLAS library)

    for path in _loaded_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in BLAS_THREAD_SYMBOLS:
            fn = getattr(lib, symbol, None)
            if fn is not None:
                n = int(fn())
                if n > 0:
                    return n
    for var in THREAD_ENV_VARS:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


BLAS_SET_THREAD_SYMBOLS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                           "openblas_set_num_threads64_", "openblas_set_num_threads", "MKL_Set_Num_Threads")


def set_blas_threads(n: int) -> bool:
    """Sets the thread count of NumPy's BLAS (OpenBLAS or MKL) in this process; False if it cannot.

        set_blas_threads(1)      # then blas_threads() == 1
    """
    import numpy  # noqa: F401  (loads the BLAS library)

    for path in _loaded_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in BLAS_SET_THREAD_SYMBOLS:
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                return True
    return False


def blas_version() -> str:
    """NumPy's BLAS as NumPy reports it, e.g. 'scipy-openblas 0.3.31.188.0'; 'unknown' if it cannot say."""
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]  # type: ignore[index]
        return f"{info.get('name', '?')} {info.get('version', '?')}"
    except Exception:  # older NumPy has no dict form; the version string is a cache key, not a contract
        return "unknown"
