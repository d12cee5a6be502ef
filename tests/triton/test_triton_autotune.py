"""The autotuner: every configuration is checked against the reference configuration before it may win,
results are cached on disk (atomically; a corrupt file is rebuilt), and cached choices are reused."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from triton_check import compile_triton, random_inputs, reference

from convc.backends.triton import autotune
from convc.backends.triton.autotune import Tuner, candidate_configs
from convc.backends.triton.launch import Launch, View
from convc.dsl import Network
from convc.numerics import budget, rel_err


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    return tmp_path


def conv_net() -> Network:
    net = Network("tune", seed=13)
    x = net.input((1, 16, 4, 5))
    net.output(net.relu(net.conv2d(x, 16, 3, padding=1)))
    return net


CONFIGS = [dict(BLOCK_M=32, BLOCK_N=16, BLOCK_K=16, num_warps=4, num_stages=2),
           dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, num_warps=4, num_stages=2),
           dict(BLOCK_M=32, BLOCK_N=32, BLOCK_K=32, num_warps=8, num_stages=3)]


def test_every_configuration_of_a_real_kernel_matches_the_reference(cache_dir: Path) -> None:
    net = conv_net()
    model = compile_triton(net)
    xs = random_inputs(net)
    [ref] = reference(net, *xs)
    [launch] = [l for l in model.launches if l.family == "conv_implicit_gemm"]
    for cfg in CONFIGS:
        model.variants[((1, 16, 4, 5),)].launches[0] = launch.with_config(cfg)
        [out] = model.run(*xs)
        assert rel_err(out, ref) <= budget("float32"), cfg
    tuner = Tuner(enabled=True, path=cache_dir / "t.json")
    best = tuner.tune(launch, "float32", CONFIGS)
    assert best in CONFIGS and not tuner.rejected


class FakeKernel:
    """Stands in for a JIT kernel: writes the right answer, except for configurations with BLOCK_M=16."""

    __name__ = "fake_kernel"

    def __init__(self, out: View, truth: torch.Tensor) -> None:
        self.out, self.truth = out, truth

    def __getitem__(self, grid: tuple[int, ...]) -> Any:
        def run(*args: Any, BLOCK_M: int, **kw: Any) -> None:
            self.out.as_matrix().copy_(self.truth + (1.0 if BLOCK_M == 16 else 0.0))
        return run


def test_a_wrong_configuration_is_excluded_even_when_fastest(cache_dir: Path) -> None:
    storage = torch.zeros(64)
    out = View(storage, 0, 8, 8, 8)
    truth = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    launch = Launch("n", FakeKernel(out, truth), lambda cfg: (1,), (), {}, dict(CONFIGS[0]), family="gemm",
                    out=out, tune_key=(8, 8, 8))
    speed = {0: 3.0, 1: 1.0, 2: 2.0}  # the broken BLOCK_M=16 config would be the fastest
    tuner = Tuner(enabled=True, path=cache_dir / "t.json", bench=lambda fn: speed[CONFIGS.index(fn.config)])
    with pytest.warns(UserWarning, match="gave wrong results"):
        best = tuner.tune(launch, "float32", CONFIGS)
    assert best == CONFIGS[2]
    assert [cfg for _, cfg, _ in tuner.rejected] == [CONFIGS[1]]
    assert torch.equal(out.as_matrix(), truth)  # the reference output is left in place


class SpillingKernel:
    """Stands in for a JIT kernel that always writes the right answer; each launch returns what Triton's
    returns on a GPU, a compiled kernel whose `n_spills` is 16 bytes for BLOCK_M=32 tiles."""

    __name__ = "spilling_kernel"

    def __init__(self, out: View, truth: torch.Tensor) -> None:
        self.out, self.truth = out, truth

    def __getitem__(self, grid: tuple[int, ...]) -> Any:
        def run(*args: Any, BLOCK_M: int, **kw: Any) -> SimpleNamespace:
            self.out.as_matrix().copy_(self.truth)
            return SimpleNamespace(n_regs=255, n_spills=16 if BLOCK_M == 32 else 0)
        return run


def test_a_spilling_configuration_is_never_timed(cache_dir: Path) -> None:
    """CONFIGS[0] (BLOCK_M=32, the reference) and CONFIGS[2] spill; the spilling reference still checks
    the others' outputs, but only CONFIGS[1] is timed and chosen, though the spilling ones are faster."""
    storage = torch.zeros(64)
    out = View(storage, 0, 8, 8, 8)
    truth = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    launch = Launch("n", SpillingKernel(out, truth), lambda cfg: (1,), (), {}, dict(CONFIGS[0]),
                    family="gemm", out=out, tune_key=(8, 8, 8))
    timed: list[dict[str, Any]] = []

    def bench(fn: Any) -> float:
        timed.append(fn.config)
        return {0: 1.0, 1: 3.0, 2: 2.0}[CONFIGS.index(fn.config)]

    tuner = Tuner(enabled=True, path=cache_dir / "t.json", bench=bench)
    assert tuner.tune(launch, "float32", CONFIGS) == CONFIGS[1]
    assert timed == [CONFIGS[1]] and not tuner.rejected
    assert [(cfg, spilled) for _, cfg, spilled in tuner.spilled] == [(CONFIGS[0], 16), (CONFIGS[2], 16)]
    all_spill = [CONFIGS[0], CONFIGS[2]]
    again = Tuner(enabled=True, path=cache_dir / "u.json", bench=bench)
    assert again.tune(launch, "float32", all_spill) == CONFIGS[0]
    assert timed == [CONFIGS[1]]  # with nothing left to time, the reference stays, untimed


def test_spilled_bytes_reads_only_a_compiled_kernel() -> None:
    assert autotune.spilled_bytes(SimpleNamespace(n_spills=24)) == 24
    assert autotune.spilled_bytes(None) == 0  # the interpreter returns nothing
    assert autotune.spilled_bytes(torch.zeros(3)) == 0  # a stand-in kernel's return value


def test_results_are_cached_on_disk_and_reused(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = conv_net()
    monkeypatch.setattr(Tuner, "__init__", _tuner_init_with(CONFIGS[:2]))
    first = compile_triton(net, autotune=True)
    data = json.loads((cache_dir / autotune.CACHE_FILE).read_text())
    assert data["version"] == autotune.CACHE_VERSION
    [(key, entry)] = data["entries"].items()
    assert key.startswith("conv_implicit_gemm|conv_implicit_gemm_kernel|") and entry["config"] in CONFIGS[:2]

    def no_tuning(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a cached configuration must not be tuned again")

    monkeypatch.setattr(Tuner, "tune", no_tuning)
    second = compile_triton(net, autotune=True)
    assert second.launches[0].config == entry["config"] == first.launches[0].config
    xs = random_inputs(net)
    np.testing.assert_array_equal(first.run(*xs)[0], second.run(*xs)[0])


def _tuner_init_with(configs: list[dict[str, Any]]) -> Any:
    original = Tuner.__init__

    def init(self: Tuner, enabled: bool, path: Path | None = None, bench: Any = None, candidates: Any = None) -> None:
        original(self, enabled, path, bench, lambda family, sizes, *rest: list(configs))
    return init


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 99, "entries": {}}),
                                     json.dumps([1, 2, 3])])
def test_a_corrupt_cache_is_rebuilt(cache_dir: Path, content: str) -> None:
    path = cache_dir / autotune.CACHE_FILE
    path.write_text(content)
    with pytest.warns(UserWarning, match="rebuilding"):
        tuner = Tuner(enabled=True)
    assert tuner.entries == {}
    tuner.entries["gemm|k|(1,)"] = {"config": dict(CONFIGS[0])}
    tuner.dirty = True
    tuner.save()
    assert json.loads(path.read_text())["entries"]["gemm|k|(1,)"]["config"] == CONFIGS[0]


def test_malformed_entries_are_not_trusted(cache_dir: Path) -> None:
    good = {"config": dict(CONFIGS[0])}
    bad = {"config": {"BLOCK_M": -1, "BLOCK_N": 32, "BLOCK_K": 16, "num_warps": 4, "num_stages": 2}}
    missing = {"config": {"BLOCK_M": 64}}
    body = {"version": autotune.CACHE_VERSION, "entries": {"gemm|a": good, "gemm|b": bad, "gemm|c": missing,
                                                            "gemm|d": "nonsense"}}
    (cache_dir / autotune.CACHE_FILE).write_text(json.dumps(body))
    assert set(Tuner(enabled=False).entries) == {"gemm|a"}


def test_gpu_candidates_start_with_the_reference_and_fit_the_problem() -> None:
    configs = candidate_configs("conv_implicit_gemm", (50176, 64, 64))
    assert all(c["BLOCK_N"] <= 64 and c["BLOCK_K"] <= 64 for c in configs) and len(configs) >= 3
    assert all(min(c["BLOCK_M"], c["BLOCK_N"], c["BLOCK_K"]) >= 16 for c in configs)  # tl.dot minimum
    tiny = candidate_configs("gemm", (1, 10, 4096))
    assert tiny and all(c["BLOCK_M"] == 16 and c["BLOCK_N"] == 16 for c in tiny)


def test_device_rel_err_matches_the_numpy_budget_check() -> None:
    rng = np.random.default_rng(5)
    expected = rng.normal(size=(7, 9)).astype(np.float32)
    actual = expected + rng.normal(scale=1e-3, size=expected.shape).astype(np.float32)
    for dtype in (torch.float32, torch.float16):
        a, e = torch.from_numpy(actual).to(dtype), torch.from_numpy(expected).to(dtype)
        assert autotune.device_rel_err(a, e) == pytest.approx(rel_err(a.double().numpy(), e.double().numpy()),
                                                              rel=1e-6)
    poisoned = torch.from_numpy(actual).clone()
    poisoned[3, 4] = float("nan")
    assert autotune.device_rel_err(poisoned, torch.from_numpy(expected)) == float("inf")


def test_the_cache_key_changes_with_the_kernel_source() -> None:
    def kernel_a(x: Any) -> None:  # stand-ins with different bodies
        return None

    def kernel_b(x: Any) -> None:
        x = x + 1

    storage = torch.zeros(4)
    out = View(storage, 0, 2, 2, 2)
    keys = []
    for kernel in (kernel_a, kernel_b):
        launch = Launch("n", kernel, lambda cfg: (1,), (), {}, dict(CONFIGS[0]), family="gemm", out=out,
                        tune_key=(2, 2, 2))
        keys.append(Tuner.key(launch, "float32"))
    assert keys[0].split("|")[:2] == ["gemm", "kernel_a"] and keys[0].rsplit("|", 1)[1] != keys[1].rsplit("|", 1)[1]
