"""The one stand-in for the Classifier in worker and window tests: real decoding, a fixed answer, a log of calls.

It implements the worker's ClassifierLike in full (and what teaching needs of a backbone); a test that needs
another answer changes an attribute of the fake it was given, never the worker.
"""

import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PySide6.QtCore import QObject, Signal

from resnext_gui.worker import ClassifyJob, DownloadJob, LoadJob, RecomputeJob, ViewJob


class FakeClassifier:
    """Answers every photo with classes 0-4; ``gate`` (if given) holds the first photo until it is set.

    ``backend`` is the runtime asked for ("auto" runs as OpenVINO would), so a test can tell what reached it.
    """

    def __init__(self, weights, device, gate: threading.Event | None = None, backend: str = "auto",
                 precision: str = "fp32") -> None:
        import torch

        self.device = torch.device("cpu")
        self.labels = [f"class {i}" for i in range(1000)]
        self.source = SimpleNamespace(describe=lambda: f"fake weights {weights}", variant=None,
                                      path=Path(str(weights or "fake.pth")))
        self.backend = "openvino" if backend == "auto" else backend
        self.precision = precision
        self.note: str | None = None
        self.load_ms = 0.0
        self.calls: list[tuple[str, str]] = []  # (photo name, layer), in the order asked
        self.gate = gate
        self.busy = threading.Event()  # set once the first photo is being computed
        # what teaching reads of a backbone (core.train): its preprocessing and a module to fingerprint
        self.loaded = SimpleNamespace(model=torch.nn.Linear(2, 2))
        self.resize, self.crop_size = 40, 32

    def classify(self, source, keep_image=False, layer=None):
        from resnext_gui.core.classifier import Prediction, TopClass
        from resnext_gui.core.errors import ImageError
        from resnext_gui.core.preprocess import load_image, source_name

        layer = layer or "layer4"
        name = source_name(source)
        self.calls.append((Path(name).name, layer))
        self.busy.set()
        if self.gate is not None:
            self.gate.wait(60)
        try:
            decoded = load_image(source)
        except ImageError as exc:
            return Prediction(path=name, ok=False, error=str(exc))
        w, h = decoded.original_size
        top = [TopClass(r + 1, r, self.labels[r], 0.5 / (r + 1)) for r in range(5)]
        side = 7 if layer == "layer4" else 14
        cams = np.random.default_rng(len(self.calls)).random((5, side, side), dtype=np.float32)
        return Prediction(path=name, ok=True, top=top, cams=cams, layer=layer, crop=(0.0, 0.0, float(w), float(h)),
                          image_size=(w, h), image=decoded.image if keep_image else None)

    # ---- teaching: features a fixed projection of the pixels ----
    def prepare(self, source):
        from resnext_gui.core.preprocess import Preprocessing, load_and_prepare

        return load_and_prepare(source, Preprocessing(40, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), True)

    def pooled_features(self, items):
        import numpy as np
        import torch

        x = torch.from_numpy(np.stack([i.tensor for i in items])).flatten(1)
        w = torch.randn(x.shape[1], 2048, generator=torch.Generator().manual_seed(0))
        f = torch.relu(x @ w)
        return torch.stack([f, f.flip(1)], 1).numpy()


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
        if not job.interactive:
            self.waiting.append(job)
        return job

    def classify(self, item_id, source, layer="layer4"):
        return self._put(ClassifyJob(item_id, source, layer))

    def recompute(self, item_id, source, layer):
        return self._put(RecomputeJob(item_id, source, layer))

    def view(self, item_id, source):
        return self._put(ViewJob(item_id, source))

    def load(self, weights, device, explicit=True, backend=None, precision=None):
        self.weights = weights
        return self._put(LoadJob(weights, device, explicit, backend, precision))

    def download(self, variant="v2", url=None):
        return self._put(DownloadJob(variant, url))

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
