"""Rich progress bars for long byte-counted steps (downloads, reading large pickles), on stderr.

``transfer_progress(enabled)`` yields a callback ``report(stage, done, total)``; each new
``stage`` text gets its own bar. With ``enabled=False`` the callback does nothing, so library code
can always call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

StageProgress = Callable[[str, int, int], None]


@contextlib.contextmanager
def transfer_progress(enabled: bool = True) -> Iterator[StageProgress]:
    if not enabled:
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    tasks: dict[str, int] = {}
    # The bars start with the first report: rich prints a newline when it stops a display on a
    # non-terminal, so a load with nothing to transfer (the embedded model) must not start one.
    with contextlib.ExitStack() as stack:
        bars: list[Progress] = []

        def report(stage: str, done: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(Progress(*columns, console=Console(stderr=True), transient=False)))
            if stage not in tasks:
                tasks[stage] = bars[0].add_task(stage, total=total or None)
            bars[0].update(tasks[stage], completed=done, total=total or None)

        yield report
