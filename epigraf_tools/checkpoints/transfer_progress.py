"""Rich progress bars for long byte-counted steps (downloads, reading large pickles), on stderr.

``transfer_progress(enabled)`` yields a callback ``report(stage, done, total)``; each new
``stage`` text gets its own bar. With ``enabled=False`` the callback does nothing, so library code
can always call it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator

from ..errors import EpigrafError

StageProgress = Callable[[str, int, int], None]

# Network limits for every download (share pages, the Hub). A socket that accepts but never answers
# fails after the read timeout; a server that answers but drips (or a retry loop that gets nowhere)
# fails once fewer than STALL_MIN_BYTES arrived in the last stall window. 64 KiB a minute is far below
# any usable link (an 800 MB checkpoint at that rate would take nine days).
DEFAULT_TIMEOUT_S = 30.0  # EPIGRAF_DOWNLOAD_TIMEOUT_S: connect / each read
DEFAULT_STALL_S = 60.0  # EPIGRAF_DOWNLOAD_STALL_S: the stall window
STALL_MIN_BYTES = 64 << 10


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else ``default`` (a bad value is an error)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise EpigrafError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def download_timeouts() -> tuple[float, float]:
    """(socket timeout, stall window) in seconds, from EPIGRAF_DOWNLOAD_TIMEOUT_S / EPIGRAF_DOWNLOAD_STALL_S."""
    return env_seconds("EPIGRAF_DOWNLOAD_TIMEOUT_S", DEFAULT_TIMEOUT_S), env_seconds(
        "EPIGRAF_DOWNLOAD_STALL_S", DEFAULT_STALL_S
    )


class StallWatch:
    """Raise EpigrafError when a byte count grows by less than STALL_MIN_BYTES within the stall window."""

    def __init__(self, label: str, stall_s: float | None = None) -> None:
        self.label = label
        self.stall_s = download_timeouts()[1] if stall_s is None else stall_s
        self.mark_time = time.monotonic()
        self.mark_bytes = 0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if done - self.mark_bytes >= STALL_MIN_BYTES:
            self.mark_time, self.mark_bytes = now, done
        elif now - self.mark_time > self.stall_s:
            raise EpigrafError(
                f"{self.label} stalled: under {STALL_MIN_BYTES >> 10} KiB in {self.stall_s:g} s "
                "(EPIGRAF_DOWNLOAD_STALL_S); check the connection and run the command again"
            )


@contextlib.contextmanager
def transfer_progress(enabled: bool = True) -> Iterator[StageProgress]:
    """Progress bars on stderr for byte-counted stages; a no-op callback when not ``enabled``."""
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
