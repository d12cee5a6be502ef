"""`convc bench` and the engine behind it: JSON report, per-layer FLOPs and floors, unavailable and unknown
backends, single-node graphs, the roofline arithmetic on hand-computed numbers."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from convc import benchmark, models
from convc.backend import Capabilities
from convc.benchmark import TimingSettings, bench_model, placement, single_node_graph, time_function
from convc.cli import main
from convc.compiler import compile as convc_compile
from convc.device_profiles import Peaks, find_profile
from convc.dsl import Network
from convc.numerics import budget, rel_err
from convc.numerics_check import seeded_inputs
from convc.roofline import LayerCost, LayerTiming, floor_seconds, layer_cost, worst_layers
from convc.summary import summarize

FAST = ["--repeat", "3", "--warmup", "1"]
# Given roofs make the floors exact and skip measuring the machine.
PEAKS = ["--peaks", "1e12,1e10"]


def bench_json(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "bench.json"
    code = main(["bench", "lenet5", "--backends", "numpy,torch", "--batch", "1,2", "--json", str(out),
                 *FAST, *extra])
    return code, json.loads(out.read_text())


def test_cli_json_has_every_backend_and_batch_with_sane_times(tmp_path: Path, capsys) -> None:
    code, report = bench_json(tmp_path)
    assert code == 0
    assert report["model"] == "lenet5" and report["dtype"] == "float32"
    assert report["batches"] == [1, 2] and report["backends"] == ["numpy", "torch"]
    for key in ("device_name", "driver", "torch", "triton", "date"):
        assert key in report["machine"]
    rows = {(r["backend"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {("numpy", 1), ("torch", 1), ("numpy", 2), ("torch", 2)}
    for (_, batch), r in rows.items():
        assert r["status"] == "ok", r
        assert r["time_ms"] > 0 and r["min_ms"] > 0 and r["runs"] >= 3
        assert r["images_per_s"] == pytest.approx(batch / (r["time_ms"] / 1e3))
        assert r["speedup_vs_torch"] == pytest.approx(rows[("torch", batch)]["time_ms"] / r["time_ms"])
        assert r["reference"] == "torch"
        assert r["budget"] == budget("float32", whole_model=True)
        assert 0 <= r["rel_err"] <= r["budget"] and r["numerics_ok"] is True
    assert rows[("torch", 1)]["rel_err"] == 0.0
    printed = capsys.readouterr().out
    assert "lenet5" in printed and "vs torch" in printed and "torch 2." in printed


def test_layers_flops_are_twice_the_summary_macs_and_floors_follow_the_roofs(tmp_path: Path) -> None:
    code, report = bench_json(tmp_path, "--layers", "--layer-backends", "numpy", *PEAKS)
    assert code == 0
    assert report["peaks"]["cpu"]["flops_per_s"] == 1e12 and report["peaks"]["cpu"]["bytes_per_s"] == 1e10
    layers = [row for row in report["layers"] if row["batch"] == 2]
    assert {row["backend"] for row in report["layers"]} == {"numpy"}
    macs = {row.name: row.macs for row in summarize(models.get("lenet5", batch=2).graph).layers}
    assert {"conv1", "conv2", "fc1", "fc2", "fc3"} <= {row["node"] for row in layers}
    for row in layers:
        if row["node"] in macs:
            assert row["flops"] == 2 * macs[row["node"]], row["node"]
        assert row["time_ms"] > 0
        expected_floor = max(row["flops"] / 1e12, row["bytes"] / 1e10) * 1e3
        assert row["floor_ms"] == pytest.approx(expected_floor)
        assert row["fraction_of_floor"] == pytest.approx(row["floor_ms"] / row["time_ms"])
    conv1 = next(row for row in layers if row["node"] == "conv1")
    # 2x1x32x32 input, 6x1x5x5 weight + 6 bias, 2x6x28x28 output, 4 bytes each.
    assert conv1["bytes"] == (2 * 32 * 32 + 150 + 6 + 2 * 6 * 28 * 28) * 4
    assert conv1["flops"] == 2 * (2 * 6 * 28 * 28) * 25
    worst = report["worst_layers"]["numpy/2"]
    assert 0 < len(worst) <= 10 and set(worst) <= {row["node"] for row in layers}


def test_unknown_backend_is_a_one_line_error_with_exit_code_2(capsys) -> None:
    code = main(["bench", "lenet5", "--backends", "numpy,no-such-backend", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "no-such-backend" in err and "numpy" in err and err.startswith("convc: error:")


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--batch", "one"], ["--backends", ""],
                                  ["--threads", "0"], ["--peaks", "fast"], ["--repeat", "0"]])
def test_bad_options_exit_2(argv: list[str], capsys) -> None:
    assert main(["bench", "lenet5", *FAST, *argv]) == 2
    assert capsys.readouterr().err.startswith("convc: error:")


def test_backend_that_cannot_run_here_is_a_row_marked_unavailable(tmp_path: Path, capsys) -> None:
    out = tmp_path / "b.json"
    code = main(["bench", "lenet5", "--backends", "numpy,torch", "--dtype", "float16", "--batch", "1",
                 "--json", str(out), *FAST])
    assert code == 0
    rows = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["numpy"]["status"] == "unavailable" and "float16" in rows["numpy"]["reason"]
    assert rows["numpy"]["time_ms"] is None and rows["numpy"]["speedup_vs_torch"] is None
    printed = capsys.readouterr().out
    assert "unavailable" in printed and "no float16 support" in printed


def test_a_gpu_backend_without_cuda_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    caps = Capabilities(ops=frozenset(), dtypes=("float32", "float16"), devices=("cuda", "cpu"))
    monkeypatch.setattr(benchmark, "get_backend", lambda name: SimpleNamespace(capabilities=caps))
    monkeypatch.setattr(benchmark, "cuda_available", lambda: False)
    device, why = placement("gpu-only", "float16")
    assert device is None and "CUDA" in why
    monkeypatch.setattr(benchmark, "cuda_available", lambda: True)
    assert placement("gpu-only", "float16") == ("cuda", "")
    assert placement("gpu-only", "bfloat16")[0] is None


def test_a_backend_that_fails_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kernel exploded\nsecond line")

    monkeypatch.setattr(benchmark, "convc_compile", broken)
    [result] = bench_model(lambda b: models.get("lenet5", batch=b), ["numpy"], [1], "float32")
    assert result.status == "error" and result.reason == "RuntimeError: kernel exploded"


def test_markdown_table_has_a_row_per_result_and_the_versions(tmp_path: Path, capsys) -> None:
    main(["bench", "lenet5", "--backends", "numpy,torch", "--batch", "1,2", "--markdown", *FAST])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| lenet5 |")]
    assert len(rows) == 4
    assert "Regenerated by `convc bench lenet5" in out and "torch " in out and "triton " in out


def test_single_node_graph_computes_what_the_node_computed_in_the_model() -> None:
    net = models.get("lenet5", batch=2)
    full = convc_compile(net, backend="numpy", dtype="float64", check_numerics=False)
    values = full.trace(*seeded_inputs(net.graph))
    for node in full.graph.nodes():
        if node.op in ("input", "param"):
            continue
        g = single_node_graph(full.graph, node)
        assert [n.name for n in g.nodes() if n.op not in ("input", "param")] == [node.name]
        alone = convc_compile(g, backend="numpy", dtype="float64", opt_level=0, check_numerics=False)
        feeds = [values[n.name] for n in g.inputs]
        [out] = alone.run(*feeds)
        assert rel_err(out, values[node.name]) < 1e-12, node.name


def test_single_node_graph_of_a_fused_residual_conv_takes_the_residual_as_an_input() -> None:
    net = Network("res", seed=0)
    x = net.input((2, 8, 6, 6))
    y = net.relu(net.conv2d(x, 8, 3, padding=1, name="c1"))
    net.output(net.relu(net.conv2d(y, 8, 3, padding=1, name="c2") + x))
    full = convc_compile(net, backend="numpy", dtype="float64", check_numerics=False)
    c2 = full.graph.node("c2")
    if ("add",) not in c2.attrs["epilogue"]:
        pytest.skip("fuse_epilogue did not fold the residual add into c2")
    g = single_node_graph(full.graph, c2)
    assert [n.name for n in g.inputs] == ["c1", "x"]
    values = full.trace(*seeded_inputs(net.graph))
    [out] = convc_compile(g, backend="numpy", dtype="float64", opt_level=0, check_numerics=False).run(
        values["c1"], values["x"])
    assert rel_err(out, values["c2"]) < 1e-12
    # Bytes count the residual like any other operand: two inputs, weight, bias and the output.
    assert layer_cost(full.graph, c2, "float32").bytes == (3 * 2 * 8 * 36 + 8 * 8 * 9 + 8) * 4


def test_time_function_counts_runs_and_stops_at_the_time_limit() -> None:
    calls = []
    timing = time_function(lambda: calls.append(1), cuda=False, warmup=2, repeat=7)
    assert len(calls) == 9 and timing.runs == 7 and all(t > 0 for t in timing.times_s)
    stopped = time_function(lambda: None, cuda=False, warmup=0, repeat=1000, max_seconds=0.0)
    assert stopped.runs == benchmark.MIN_RUNS


def test_roofline_floor_on_hand_computed_numbers() -> None:
    # ResNet conv2_x 3x3: 1x64x56x56 -> 64, pad 1; MACs 56*56*64*64*9 = 115,605,504 (fp16, no bias).
    flops = 2 * 56 * 56 * 64 * 64 * 9
    nbytes = (64 * 56 * 56 + 64 * 64 * 9 + 64 * 56 * 56) * 2
    assert (flops, nbytes) == (231_211_008, 876_544)
    h100 = Peaks(989e12, 3.35e12, "datasheet")
    # 231.2 MFLOP / 989 TFLOP/s = 0.2338 us < 876.5 KB / 3.35 TB/s = 0.2617 us: memory-bound at batch 1.
    assert floor_seconds(flops, nbytes, h100) == pytest.approx(876_544 / 3.35e12)
    timing = LayerTiming("triton", 1, LayerCost("conv", "conv2d", flops, nbytes), 1.0e-6, h100)
    assert timing.bound == "memory"
    assert timing.fraction_of_floor == pytest.approx(0.26165, rel=1e-4)
    assert timing.achieved_flops_per_s == pytest.approx(231.211008e12)
    # Intensity of a same-padded 3x3 conv in fp16 is about 2*9*C FLOPs per 4 bytes = 4.5*C: 288 for C=64
    # (under the 295 FLOP/B ridge at any batch), 1152 for conv4_x's C=256: compute-bound.
    conv4 = LayerCost("conv4", "conv2d", 64 * flops, (64 * 2 * 256 * 14 * 14 + 256 * 256 * 9) * 2)
    assert conv4.flops == 64 * 2 * 14 * 14 * 256 * 256 * 9
    assert floor_seconds(conv4.flops, conv4.bytes, h100) == pytest.approx(64 * flops / 989e12)
    assert LayerTiming("t", 64, conv4, 1e-3, h100).bound == "compute"
    assert h100.ridge_intensity == pytest.approx(295.22, rel=1e-4)


def test_layer_cost_counts_each_operand_once_and_uses_the_dtype_size() -> None:
    net = models.get("lenet5", batch=1)
    g = net.graph
    fc1 = g.node("fc1")
    cost = layer_cost(g, fc1, "bfloat16")
    assert cost.flops == 2 * 400 * 120
    assert cost.bytes == (400 + 120 * 400 + 120 + 120) * 2


def test_worst_layers_rank_by_time_above_the_floor() -> None:
    peaks = Peaks(1e12, 1e10, "given")
    small_but_slow = LayerTiming("b", 1, LayerCost("flatten", "flatten", 0, 100), 1e-5, peaks)
    big_and_slow = LayerTiming("b", 1, LayerCost("conv", "conv2d", 10**9, 10**6), 1e-2, peaks)
    near_floor = LayerTiming("b", 1, LayerCost("fc", "linear", 10**9, 10**5), 1.1e-3, peaks)
    assert small_but_slow.fraction_of_floor < big_and_slow.fraction_of_floor
    worst = worst_layers([small_but_slow, near_floor, big_and_slow], 2)
    assert [t.cost.name for t in worst] == ["conv", "fc"]


def test_device_profiles_match_gpu_names() -> None:
    h100 = find_profile("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    sheet = h100.peaks("float16", "datasheet")
    assert (sheet.flops_per_s, sheet.bytes_per_s) == (989e12, 3.35e12)
    measured = h100.peaks("bfloat16", "measured")
    assert (measured.flops_per_s, measured.bytes_per_s) == (798e12, 3.0e12) and "measured" in measured.source
    assert find_profile("NVIDIA H100 PCIe").name == "H100 PCIe"
    assert find_profile("NVIDIA H200").peaks("float16", "datasheet").bytes_per_s == 4.8e12
    assert find_profile("Some Future GPU") is None
    assert str(sheet) == "989 TFLOP/s, 3.35 TB/s"
    assert str(Peaks(1.534e10, 9.1e9, "cpu")) == "15.3 GFLOP/s, 9.1 GB/s"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "roofline.png"
    code, _ = bench_json(tmp_path, "--plot", str(png), "--layer-backends", "numpy", *PEAKS)
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_wrong_backend_output_fails_the_check_and_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    real = benchmark.as_numpy

    def numpy_off_by_one(out: object) -> np.ndarray:
        value = real(out)
        return value + 1.0 if isinstance(out, list) else value  # the NumPy runner returns a list

    monkeypatch.setattr(benchmark, "as_numpy", numpy_off_by_one)
    assert main(["bench", "lenet5", "--backends", "numpy,torch", *FAST]) == 1
    results = bench_model(lambda b: models.get("lenet5", batch=b), ["numpy", "torch"], [1], "float32",
                          TimingSettings(warmup=0, repeat=3))
    numpy_row = next(r for r in results if r.backend == "numpy")
    assert numpy_row.numerics_ok is False and math.isfinite(numpy_row.rel_err) and numpy_row.rel_err > 0.1


def test_threads_sets_torch_and_numpy_s_blas_alike() -> None:
    """`convc bench --threads N`: torch, NumPy's BLAS (and onnxruntime, through its options) use N."""
    import torch

    from convc.device_profiles import blas_threads, set_blas_threads

    before_torch, before_blas = torch.get_num_threads(), blas_threads()
    try:
        benchmark.set_cpu_threads(2)
        assert torch.get_num_threads() == 2 and blas_threads() == 2
        assert benchmark.backend_options("onnxruntime", "cpu", False) == {"threads": 2}
        benchmark.set_cpu_threads(1)
        assert blas_threads() == 1
    finally:
        torch.set_num_threads(before_torch)
        set_blas_threads(before_blas)
