"""Work that reaches the GUI thread in bursts, done a few items per event-loop turn so the window keeps answering."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QTimer

T = TypeVar("T")

TURN_S = 0.008  # at most this long per event-loop turn (a 60 Hz frame is 16 ms)


class PacedQueue(QObject, Generic[T]):
    """Items are handled in the order put, by ``handle``, for at most ``turn_s`` per event-loop turn.

    A folder listed faster than the window can add it, or answers arriving faster than the window can show
    them (a GPU), then never hold up painting, typing or clicks."""

    def __init__(self, handle: Callable[[T], None], parent: QObject | None = None, turn_s: float = TURN_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(parent)
        self._handle = handle
        self._turn_s = turn_s
        self._clock = clock
        self._items: deque[T] = deque()
        self._timer = QTimer(self)
        self._timer.setInterval(1)  # not 0: timers already due (input, painting) go first
        self._timer.timeout.connect(self._turn)

    def put(self, item: T) -> None:
        self._items.append(item)
        if not self._timer.isActive():
            self._timer.start()

    def clear(self) -> None:
        self._items.clear()
        self._timer.stop()

    def __len__(self) -> int:
        return len(self._items)

    def _turn(self) -> None:
        end = self._clock() + self._turn_s
        while self._items:  # at least one item a turn, so a slow one can't stall the queue
            self._handle(self._items.popleft())
            if self._clock() >= end:
                break
        if not self._items:
            self._timer.stop()
