"""Progress of long work (measuring algorithms, autotuning, checking or timing backends), without a UI.

Code that loops over slow steps reports them; whoever runs it (the CLI draws a bar with rich) decides
what to show. With nobody listening a report costs one context-variable lookup:

    for node in track(convs, "measuring conv algorithms", label=lambda n: n.name):
        ...                                        # each step: done, total and what runs now

    with reporting_to(print):                      # any callable taking a ProgressEvent
        convc.compile(net, opt_level=3)

    with reporting_lines_to(print):                # one line each; the CLI's bar keeps drawing
        convc.compile(net, opt_level=3)            # "measuring conv algorithms 1/3: conv2"
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ProgressEvent:
    """`done` of `total` steps of `task` are finished and `current` runs now ('' once all are done);
    `total` is None when the number of steps is not known in advance."""

    task: str
    done: int
    total: int | None
    current: str = ""

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def line(self) -> str:
        """One line of text: 'measuring conv algorithms 1/3: conv2' ('... 3/3' once all are done)."""
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        return f"{self.task} {count}: {self.current}" if self.current else f"{self.task} {count}"


ProgressSink = Callable[[ProgressEvent], None]
_SINK: ContextVar[ProgressSink | None] = ContextVar("convc_progress_sink", default=None)


@contextmanager
def reporting_to(sink: ProgressSink | None) -> Iterator[None]:
    """Sends every report made inside the block (in this thread or task) to `sink`."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


@contextmanager
def reporting_lines_to(write: Callable[[str], None] | None) -> Iterator[None]:
    """Also hands each report made inside the block to `write` as one line (ProgressEvent.line); the sink
    already listening (the CLI's bar) keeps receiving the events. None changes nothing."""
    if write is None:
        yield
        return
    outer = _SINK.get()

    def both(event: ProgressEvent) -> None:
        if outer is not None:
            outer(event)
        write(event.line())

    with reporting_to(both):
        yield


def report(task: str, done: int, total: int | None, current: str = "") -> None:
    """One step of `task` starts (or, with done == total, the task ends)."""
    sink = _SINK.get()
    if sink is not None:
        sink(ProgressEvent(task, done, total, current))


def track(items: Sequence[T], task: str, label: Callable[[T], str] = str) -> Iterator[T]:
    """Yields `items`, reporting before each one which it is and after the last that the task is done."""
    total = len(items)
    for i, item in enumerate(items):
        report(task, i, total, label(item))
        yield item
    report(task, total, total)
