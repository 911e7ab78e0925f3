"""Lists dropped files and folders on a thread of its own, so a huge folder never blocks the window."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

CHUNK_FILES = 256  # files per batch sent to the window ...
CHUNK_SECONDS = 0.1  # ... or whatever was found in this long, so the first photos show up at once
# Walking a folder is Python work that holds the interpreter lock; every few files the scanner lets go of it
# for a moment, so the window's thread gets it at once for painting and input (else it can wait a few ms each time).
YIELD_EVERY = 32
YIELD_S = 0.0005


class FolderScanner(QThread):
    """One request at a time, in the order asked; each request's files come in chunks as they are found."""

    found = Signal(int, list)  # request id, [path str]
    skipped = Signal(int, str, str)  # request id, path, reason
    passedOver = Signal(int, int)  # request id, files in its folders that are not images by name (before its end)
    finishedRequest = Signal(int, int, bool)  # request id, files found, cancelled

    live: set[FolderScanner] = set()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("resnext-gui folder scan")
        self._requests: queue.Queue[tuple[int, list[str], int] | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._generation = 0  # bumped by cancel(): requests of older generations stop
        self._lock = threading.Lock()

    def scan(self, paths: list[str]) -> int:
        request = next(self._ids)
        with self._lock:
            generation = self._generation
        self._requests.put((request, list(paths), generation))
        if not self.isRunning():
            FolderScanner.live.add(self)
            self.start()
        return request

    def cancel(self) -> None:
        """Stop listing: the request in progress ends at its next file, waiting ones are dropped."""
        with self._lock:
            self._generation += 1

    def stop(self, timeout_ms: int = 5000) -> bool:
        self.cancel()
        self._requests.put(None)
        done = self.wait(timeout_ms) if self.isRunning() else True
        if done:
            FolderScanner.live.discard(self)
        return done

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation

    def run(self) -> None:
        from ..core.paths import iter_images

        while True:
            request = self._requests.get()
            if request is None:
                return
            rid, paths, generation = request
            count, chunk, last = 0, [], time.monotonic()
            others = [0]  # a folder's files that are not images, counted so the window can say them

            def skip(path: Path, reason: str, rid: int = rid) -> None:
                self.skipped.emit(rid, str(path), reason)

            def other(_path: Path, others: list[int] = others) -> None:
                others[0] += 1

            cancelled = not self._current(generation)
            if not cancelled:
                for path in iter_images(paths, skip, other):
                    if not self._current(generation):
                        cancelled = True
                        break
                    chunk.append(str(path))
                    if len(chunk) % YIELD_EVERY == 0:
                        time.sleep(YIELD_S)
                    now = time.monotonic()
                    if len(chunk) >= CHUNK_FILES or now - last >= CHUNK_SECONDS:
                        self.found.emit(rid, chunk)
                        count += len(chunk)
                        chunk, last = [], now
            if chunk and not cancelled:
                self.found.emit(rid, chunk)
                count += len(chunk)
            if others[0] and not cancelled:
                self.passedOver.emit(rid, others[0])
            self.finishedRequest.emit(rid, count, cancelled)
