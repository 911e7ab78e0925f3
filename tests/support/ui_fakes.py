"""Fakes for the worker and window tests: the classifier factory and a thread-less worker (the classifier
itself is tests/support/fakes.py's FakeClassifier). FakeWorker answers through the real worker's Callbacks, so
an answer reaches exactly the callbacks its job was sent with, as in the app."""

import threading

from PySide6.QtCore import QObject, Signal

from resnext_gui.worker.runner import Callbacks, ModelChoice
from tests.support.fakes import FakeClassifier


class FakeFactory:
    """The Worker's classifier_factory: remembers each FakeClassifier it made and what it was asked for."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.made: list[FakeClassifier] = []
        self.options: list[dict] = []  # backend, precision and progress the worker asked for, per model made

    def __call__(self, weights, device, *, backend, precision, progress):
        clf = FakeClassifier(weights, device, self.gate, backend, precision)
        self.made.append(clf)
        self.options.append({"backend": backend, "precision": precision, "progress": progress})
        return clf


class FakeWorker(QObject):
    """The Worker's interface (runner.WorkerLike) without its thread: records every job sent; a test answers one
    with ``answer``, ``fail`` or ``report`` (progress)."""

    loading = Signal(str)
    unheard = Signal(object, str)

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list = []  # every job sent, in order
        self.waiting: list = []  # batch and stored-answer jobs not yet answered nor dropped
        self.first_model = ModelChoice("fake.pth", "cpu")
        self.callbacks = Callbacks(self.unheard.emit)
        self.gallery: list[str] | None = None

    def submit(self, job, on_done=None, on_fail=None, on_progress=None):
        self.callbacks.add(job, on_done, on_fail, on_progress)
        self.jobs.append(job)
        if job.lane in ("batch", "stored"):  # what Stop drops
            self.waiting.append(job)
        return job

    def cancel(self, job):
        job.cancel.set()

    def cancel_batch(self):
        dropped, self.waiting = self.waiting, []
        for job in dropped:
            self.callbacks.drop(job)
        return dropped

    def pending(self):
        return len(self.waiting)

    def keep_gallery(self, paths):
        self.gallery = list(paths)

    def start(self):
        pass

    def stop(self, timeout_ms=20000):
        return True

    def is_running(self):
        return False

    def of(self, kind):
        return [j for j in self.jobs if isinstance(j, kind)]

    def answer(self, job, result):
        if job in self.waiting:
            self.waiting.remove(job)
        self.callbacks.done(job, result)

    def fail(self, job, message):
        if job in self.waiting:
            self.waiting.remove(job)
        self.callbacks.failed(job, message)

    def report(self, job, done, total):
        self.callbacks.progress(job, done, total)
