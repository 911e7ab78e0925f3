"""Fakes for the worker and window tests: the classifier factory and a thread-less worker (the classifier
itself is tests/fakes.py's FakeClassifier)."""

import threading

from PySide6.QtCore import QObject, Signal

from resnext_gui.worker import (
    ClassifyJob,
    CountJob,
    DownloadJob,
    FaithfulnessJob,
    LoadJob,
    RecomputeJob,
    SaveImageJob,
    SaveModelJob,
    ScoreCamJob,
    ViewJob,
)
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
    """The Worker's interface without its thread: records every request; a test answers with ``answer``/``fail``."""

    loading = Signal(str)
    progress = Signal(object, int, int)
    finished = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list = []  # every job asked for, in order
        self.waiting: list = []  # batch jobs not yet answered nor dropped
        self.weights: str | None = "fake.pth"
        self.cancelled_downloads = 0

    def _put(self, job):
        self.jobs.append(job)
        if job.lane == "batch":
            self.waiting.append(job)
        return job

    def classify(self, item_id, source, layer="layer4", method="gradcam"):
        return self._put(ClassifyJob(item_id, source, layer, method))

    def recompute(self, item_id, source, layer, method="gradcam"):
        return self._put(RecomputeJob(item_id, source, layer, method))

    def score_cam(self, item_id, source, layer, classes):
        return self._put(ScoreCamJob(item_id, source, layer, tuple(classes)))

    def faithfulness(self, item_id, source, class_index, cam, method="gradcam", layer="layer4"):
        return self._put(FaithfulnessJob(item_id, source, class_index, cam, method, layer))

    def cancel(self, job):
        job.cancel.set()

    def view(self, item_id, source, full=False):
        return self._put(ViewJob(item_id, source, full))

    def load(self, weights, device, explicit=True, backend=None, precision=None):
        self.weights = weights
        return self._put(LoadJob(weights, device, explicit, backend, precision))

    def download(self, variant="v2", url=None):
        return self._put(DownloadJob(variant, url))

    def count_classes(self, data):
        return self._put(CountJob(data))

    def save_model(self, source, target):
        return self._put(SaveModelJob(source, target))

    def submit(self, job):
        return self._put(job)

    def keep_gallery(self, paths):
        self.gallery = list(paths)

    def save_image(self, path, image, text):
        return self._put(SaveImageJob(path, image, text))

    def cancel_download(self):
        self.cancelled_downloads += 1

    def cancel_batch(self):
        dropped, self.waiting = [j.item_id for j in self.waiting], []
        return dropped

    def start(self):
        pass

    def stop(self):
        return True

    def is_running(self):
        return False

    def of(self, kind):
        return [j for j in self.jobs if isinstance(j, kind)]

    def answer(self, job, result):
        if job in self.waiting:
            self.waiting.remove(job)
        self.finished.emit(job, result)

    def fail(self, job, message):
        if job in self.waiting:
            self.waiting.remove(job)
        self.failed.emit(job, message)
