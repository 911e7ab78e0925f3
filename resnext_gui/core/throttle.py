"""A progress callback that passes on at most one update per interval, and always the last one (GUI and CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable


def throttled(emit: Callable[[int, int], None], every_s: float = 0.05,
              clock: Callable[[], float] = time.monotonic) -> Callable[[int, int], None]:
    """Wrap a ``(done, total)`` callback: the first update, then one per ``every_s``, and ``done == total``."""
    last: list[float | None] = [None]

    def progress(done: int, total: int) -> None:
        now = clock()
        previous = last[0]
        if previous is None or now - previous >= every_s or done == total:
            last[0] = now
            emit(done, total)

    return progress
