"""How the CLI draws: tables that fit the terminal (80 columns when piped) and progress bars on stderr.

    table = make_table("resnet18", ["layer", "op", ("params", "right")])
    table.add_row("layer1.0.conv1", "conv2d", "36,864")
    console.print(keep_whole(table, "layer"))          # layer names are never cut; other columns wrap

    with showing_progress(enabled=not args.quiet):     # draws convc.progress reports while it runs
        convc.compile(net, opt_level=3)
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from convc.progress import ProgressEvent, reporting_to

# Progress goes to stderr, so it never mixes with a table or JSON that is piped on.
err_console = Console(stderr=True, highlight=False)


def make_table(title: str, columns: Sequence[str | tuple[str, str]]) -> Table:
    """A table with light rules (no vertical lines: two columns of padding each, not three); a column
    is a header or (header, justify)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for col in columns:
        header, justify = (col, "left") if isinstance(col, str) else col
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    return table


def _plain_lines(cell: object) -> list[str]:
    text = Text.from_markup(cell) if isinstance(cell, str) else cell
    return text.plain.splitlines() or [""] if isinstance(text, Text) else [""]


def keep_whole(table: Table, *headers: str, words: Sequence[str] = (), width: int | None = None) -> Table:
    """Fits the table in `width` (default: the terminal's, 80 when piped) without ever cutting a cell of
    the `headers` columns (a layer name must be read whole). The other columns are narrowed, widest
    first, first down to their longest word (cells wrap at spaces), then, if the table is still too
    wide, further (long words fold): ordinary columns first, the `words` columns last, the last listed
    first. Nothing ends in '…'."""
    width = width or Console().width
    cells = [[line for c in [col.header, *col.cells] for line in _plain_lines(c)] for col in table.columns]
    natural = [max(len(line) for line in lines) for lines in cells]
    longest_word = [max([len(w) for line in lines for w in line.split()] + [1]) for lines in cells]
    keep = {i for i, col in enumerate(table.columns) if str(col.header) in headers}
    rank = {str(h): r for r, h in enumerate(words)}
    widths = list(natural)
    padding = 3 * (len(widths) - 1)  # between two cells: a space, the (blank) rule, a space

    def narrow(candidates: list[int]) -> bool:
        if not candidates:
            return False
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        return True

    while sum(widths) + padding > width and narrow(
            [i for i in range(len(widths)) if i not in keep and widths[i] > longest_word[i]]):
        pass
    while sum(widths) + padding > width:
        movable = [i for i in range(len(widths)) if i not in keep and widths[i] > 4]
        ordinary = [i for i in movable if str(table.columns[i].header) not in rank]
        listed = sorted((i for i in movable if i not in ordinary), key=lambda i: -rank[str(table.columns[i].header)])
        if not narrow(ordinary or listed[:1]):
            break
    squeezed = widths != natural
    for i, col in enumerate(table.columns):
        col.overflow = "fold"
        col.no_wrap = i in keep
        col.width = widths[i] if squeezed else None
    return table


@contextmanager
def showing_progress(enabled: bool = True, console: Console | None = None) -> Iterator[None]:
    """Draws every convc.progress report made inside the block as a bar (count, the step now running,
    elapsed time) on stderr; nothing when disabled or when stderr is not a terminal."""
    console = console or err_console
    if not enabled or not console.is_terminal:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # stdout is left alone (a table or JSON printed meanwhile goes where it was sent), and the bar is on
    # screen only while a task runs, so what a command prints afterwards never mixes with it.
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
    tasks: dict[str, int] = {}

    def draw(event: ProgressEvent) -> None:
        if event.task not in tasks:
            if not tasks:
                bars.start()
            tasks[event.task] = bars.add_task(event.task, total=event.total)
        task_id = tasks[event.task]
        if event.finished:
            bars.remove_task(task_id)
            del tasks[event.task]
            if not tasks:
                bars.stop()
            return
        description = f"{event.task}: {event.current}" if event.current else event.task
        bars.update(task_id, completed=event.done, total=event.total, description=description)
        bars.refresh()  # a step is slow (that is why it reports): show it now, not at the next tick

    try:
        with reporting_to(draw):
            yield
    finally:
        bars.stop()
