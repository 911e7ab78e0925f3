"""The job contract and the worker's four lanes: what the user asked for first, then answers the results library
holds, then batch photos and background steps in turn."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from .runner import Context

Lane = Literal["interactive", "stored", "batch", "background"]
R = TypeVar("R")  # what a job answers

CANCELLED = "Cancelled."


class JobFailed(Exception):
    """A job could not do what it was asked; the message is what the user reads."""


class Again:
    """What a background job's run answers when it did one step of several: it goes back in line."""

    def __repr__(self) -> str:
        return "AGAIN"


AGAIN = Again()


class Job(Generic[R]):
    """One piece of work for the worker thread; ``run`` answers R (or AGAIN, for a background job's step).

    Every job answers exactly once: its result, or a failure message (JobFailed's, or "internal error" for
    anything unexpected, logged with its traceback). A job is a plain object built on the GUI thread and run on
    the worker's, so it carries its inputs only (a QImage crossing threads is copied first)."""

    # "interactive": what the user asked for, taken first. "stored": photos answered from the results library
    # (no forward pass), next: a reopened gallery is shown before anything is computed. "batch": a photo of a
    # batch, after those. "background": work for the photo shown that takes turns with the batch photos, a step
    # at a time (AGAIN). Stored and batch jobs wait for a model, and Stop drops both.
    lane: ClassVar[Lane] = "interactive"

    def run(self, ctx: Context) -> R | Again:
        raise NotImplementedError


class Cancellable:
    """A job that stops between two of its steps once ``cancel`` is set (``Worker.cancel``); it then fails with
    CANCELLED."""

    cancel: threading.Event


class JobQueue:
    """Four lanes shared by the GUI thread and the worker. Interactive jobs are always taken first, then answers
    the library holds (quick: no forward pass); then batch photos and background steps take turns, one each,
    while both wait (the batch keeps moving while the photo shown is scored, and the score does not wait for the
    whole batch).

    Stored answers and batch photos wait while there is no model. ``put`` says whether the worker needs waking;
    the worker keeps itself awake while jobs remain, so at most one wake-up is ever on its way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[Lane, deque[Job[Any]]] = {"interactive": deque(), "stored": deque(), "batch": deque(),
                                                     "background": deque()}
        self._batch = self._lanes["batch"]
        self._stored = self._lanes["stored"]
        self._background_next = True  # whose turn it is when a batch photo and a background step both wait
        self._awake = False

    def put(self, job: Job[Any], first: bool = False) -> bool:
        """Queue ``job`` in its lane (``first``: ahead of the others in it); True when the worker needs waking."""
        with self._lock:
            lane = self._lanes[job.lane]
            if first:
                lane.appendleft(job)
            else:
                lane.append(job)
            wake, self._awake = not self._awake, True
            return wake

    def take(self, batch_allowed: bool) -> Job[Any] | None:
        with self._lock:
            interactive, background = self._lanes["interactive"], self._lanes["background"]
            if interactive:
                return interactive.popleft()
            if batch_allowed and self._stored:
                return self._stored.popleft()
            batch = batch_allowed and bool(self._batch)
            if background and (self._background_next or not batch):
                self._background_next = False
                return background.popleft()
            if batch:
                self._background_next = True
                return self._batch.popleft()
            self._awake = False
            return None

    def wake_if_needed(self, batch_allowed: bool) -> bool:
        with self._lock:
            has_work = (bool(self._lanes["interactive"]) or bool(self._lanes["background"])
                        or (batch_allowed and (bool(self._batch) or bool(self._stored))))
            wake = has_work and not self._awake
            self._awake = self._awake or wake
            return wake

    def drop_batch(self) -> list[Job[Any]]:
        """Remove the batch photos (and stored answers) not yet started; returns their jobs."""
        with self._lock:
            dropped = [*self._stored, *self._batch]
            self._stored.clear()
            self._batch.clear()
            return dropped

    def queued(self) -> list[Job[Any]]:
        """Every job waiting, in no particular order (to cancel them all when the worker stops)."""
        with self._lock:
            return [job for lane in self._lanes.values() for job in lane]

    def pending_batch(self) -> int:
        with self._lock:
            return len(self._batch) + len(self._stored)
