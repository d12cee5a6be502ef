"""Progress reports (convc.progress) from the slow parts, and the CLI's bar that draws them on stderr
only when stderr is a terminal."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

import convc
from convc.benchmark import TimingSettings, bench_model
from convc.commands.ui import showing_progress
from convc.progress import ProgressEvent, report, reporting_lines_to, reporting_to, track


def collect() -> tuple[list[ProgressEvent], object]:
    events: list[ProgressEvent] = []
    return events, events.append


def test_track_reports_each_step_then_the_end() -> None:
    events, sink = collect()
    with reporting_to(sink):
        assert list(track(["a", "b"], "work", str.upper)) == ["a", "b"]
    assert [(e.task, e.done, e.total, e.current, e.finished) for e in events] == [
        ("work", 0, 2, "A", False), ("work", 1, 2, "B", False), ("work", 2, 2, "", True)]
    report("nobody listens", 0, 1)  # outside the block: no sink, no error, no event
    assert len(events) == 3


def test_lines_go_to_a_writer_while_the_enclosing_sink_keeps_its_events() -> None:
    events, sink = collect()
    lines: list[str] = []
    with reporting_to(sink), reporting_lines_to(lines.append):
        list(track(["a", "b"], "work"))
        report("open-ended", 5, None, "x")
    assert lines == ["work 0/2: a", "work 1/2: b", "work 2/2", "open-ended 5: x"]
    assert [e.line() for e in events] == lines  # the bar (the enclosing sink) saw every event
    with reporting_to(sink), reporting_lines_to(None):  # None: nothing changes
        report("work", 0, 1)
    assert len(events) == 5 and len(lines) == 4


def test_measuring_at_O3_reports_every_measured_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVC_CACHE_DIR", str(tmp_path))
    events, sink = collect()
    net = convc.models.get("lenet5")
    with reporting_to(sink):
        model = convc.compile(net, backend="numpy", opt_level=3)
    measured = [lp.layer for lp in model.plan.layers if lp.source == "measured"]
    steps = [e for e in events if e.task == "measuring conv algorithms"]
    assert measured == ["conv1", "conv2"]
    assert [(e.done, e.current) for e in steps] == [(0, "conv1"), (1, "conv2"), (2, "")]
    assert all(e.total == 2 for e in steps)


def test_bench_reports_each_case_with_its_backend_and_batch() -> None:
    events, sink = collect()
    with reporting_to(sink):
        results = bench_model(lambda b: convc.models.get("lenet5", batch=b), ["numpy"], [1, 2], "float32",
                              TimingSettings(warmup=0, repeat=1, max_seconds=1.0))
    assert [r.status for r in results] == ["ok", "ok"]
    assert [(e.done, e.total, e.current) for e in events] == [
        (0, 2, "numpy, batch 1"), (1, 2, "numpy, batch 2"), (2, 2, "")]


def test_check_reports_each_backend(capsys: pytest.CaptureFixture[str]) -> None:
    from convc.cli import main

    events, sink = collect()
    with reporting_to(sink):
        assert main(["check", "lenet5", "--backends", "numpy,torch", "--quiet"]) == 0
    assert [e.current for e in events if e.task.startswith("checking")] == ["numpy", "torch", ""]


def test_the_bar_is_drawn_on_a_terminal_only() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    stdout = sys.stdout
    with showing_progress(console=terminal):
        for _ in track(["conv1", "conv2", "conv3"], "measuring conv algorithms"):
            assert sys.stdout is stdout  # what a command prints still goes to stdout, not the bar's stream
    drawn = terminal.file.getvalue()
    assert "measuring conv algorithms: conv2" in drawn and "1/3" in drawn
    piped = Console(file=io.StringIO(), width=80)
    with showing_progress(console=piped):
        list(track(["conv1"], "measuring conv algorithms"))
    quiet = Console(file=io.StringIO(), force_terminal=True, width=80)
    with showing_progress(enabled=False, console=quiet):
        list(track(["conv1"], "measuring conv algorithms"))
    assert piped.file.getvalue() == "" and quiet.file.getvalue() == ""
