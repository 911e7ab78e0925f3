"""The time a long computation has left (Score-CAM's thousands of passes), from its rate so far, in words."""

from __future__ import annotations

import time
from collections.abc import Callable


class TimeLeft:
    """``update(done, total)`` after each step; ``seconds`` is then the time left at the rate since the first
    update (what came before it, such as the pass that finds the activation maps, is not a step), or None
    until two updates have shown a rate. ``clock`` is injected so tests count steps instead of waiting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._first: tuple[int, float] | None = None  # (done, when) at the first update
        self.seconds: float | None = None

    def reset(self) -> None:
        self._first, self.seconds = None, None

    def update(self, done: int, total: int) -> float | None:
        now = self.clock()
        if self._first is None or done < self._first[0]:  # a new computation, or the first step of this one
            self._first, self.seconds = (done, now), None
            return None
        done0, start = self._first
        if done > done0 and total >= done:
            self.seconds = (now - start) / (done - done0) * (total - done)
        return self.seconds


def say_time_left(seconds: float | None) -> str:
    """"about 4 min left", "about 35 s left", "about 1 h 10 min left"; "" when not known yet."""
    if seconds is None:
        return ""
    if seconds < 10:
        return "a few seconds left"
    if round(seconds / 5) * 5 < 60:
        return f"about {max(10, int(round(seconds / 5)) * 5)} s left"
    minutes = max(1, int(round(seconds / 60)))
    if minutes < 60:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes} min left" if minutes else f"about {hours} h left"
