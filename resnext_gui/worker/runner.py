"""The worker thread and its facade: jobs go in with their callbacks, each answers once on the GUI thread.

``Worker`` (GUI thread) owns a QThread and a ``Context`` that lives in it: the context takes a job from the
queue, lets it run with itself as the job's context (the model, the library, progress), and sends the one
answer back; ``Worker`` hands it to the callbacks the caller gave ``submit``. This module imports no job.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ..core.kinds import Backend, Layer, Method, Precision, RuntimeName
from ..core.logs import internal_error
from ..core.throttle import throttled
from .keeper import LibraryKeeper
from .queue import AGAIN, Cancellable, Job, JobFailed, JobQueue

if TYPE_CHECKING:
    from ..core.devices import Device
    from ..core.faithfulness import Faithfulness
    from ..core.prediction import Prediction
    from ..core.preprocess import Prepared, Source
    from ..core.weights import WeightsSource

log = logging.getLogger(__name__)
R = TypeVar("R")


# ---- what the worker needs of a classifier ----
class ClassifierLike(Protocol):
    """Exactly what the worker uses of the core's Classifier (the test fakes implement all of it).

    Teaching hands the classifier to ``core.train``, whose needs are the core's own (a real Classifier).
    """

    @property
    def labels(self) -> list[str]: ...
    @property
    def source(self) -> WeightsSource: ...
    @property
    def backend(self) -> RuntimeName: ...
    @property
    def device(self) -> Device: ...
    precision: Precision
    note: str | None  # why the runtime asked for is not the one in use, if it is not
    load_ms: float

    def classify(self, source: Source, keep_image: bool = False, layer: Layer | None = None,
                 method: Method | None = None) -> Prediction: ...
    def prepare(self, source: Source) -> Prepared: ...
    def score_cams(self, item: Prepared, classes: Sequence[int], layer: Layer = "layer4",
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> np.ndarray: ...
    def faithfulness_passes(self, item: Prepared, class_index: int,
                            cam: np.ndarray) -> Generator[int, None, Faithfulness]: ...


class ClassifierFactory(Protocol):
    def __call__(self, weights: str | None, device: str, *, backend: Backend, precision: Precision,
                 progress: Callable[[str], None] | None) -> ClassifierLike: ...


def default_factory(weights: str | None, device: str, *, backend: Backend = "auto", precision: Precision = "fp32",
                    progress: Callable[[str], None] | None = None) -> ClassifierLike:
    from ..core.classifier import Classifier

    return Classifier(weights, device=device, backend=backend, precision=precision, progress=progress)


def runtime_facts(threads: int | None) -> bool:
    """Set the thread count in the thread that runs the model (PyTorch's is per thread; no-op without it) and
    say whether a CUDA GPU is there (torch is imported for that only where a GPU is possible at all)."""
    from ..core import devices

    devices.set_threads(threads)
    return devices.cuda_available()


@dataclass
class ModelChoice:
    """The model the worker runs, or is to run: weights (None: the lookup order), device, CPU runtime, precision."""

    weights: str | None
    device: str = "auto"
    backend: Backend = "auto"
    precision: Precision = "fp32"


class Context(QObject):
    """Lives in the worker thread: takes a job, lets it run with this context, and sends its one answer.

    What jobs use: ``classifier`` (``require_classifier``), ``model`` (the choice it was loaded with),
    ``factory``, ``library`` (the results library's keeper), ``pixel_ratio``, ``progress_of``."""

    def __init__(self, out: Worker, queue: JobQueue, factory: ClassifierFactory, model: ModelChoice,
                 pixel_ratio: float, threads: int | None, library: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.library = LibraryKeeper(library, pixel_ratio)  # the results library; opened after the model loads
        self.out, self.queue, self.factory = out, queue, factory
        self.model = model
        self.pixel_ratio, self.threads = pixel_ratio, threads
        self.classifier: ClassifierLike | None = None
        self.cuda_available = False
        self.running: Job[Any] | None = None  # the job being computed (read from the GUI thread by Worker.stop)

    @Slot()
    def start(self) -> None:
        self.cuda_available = runtime_facts(self.threads)
        self._kick()

    @Slot()
    def shutdown(self) -> None:
        """In the worker thread, as it ends: the gallery kept last is written and the library closed."""
        self.library.close()

    @Slot()
    def tick(self) -> None:
        """One job, then let the event loop breathe (a stop request is seen between two photos)."""
        self.library.flush()  # the gallery the window kept last, if it changed
        job = self.queue.take(batch_allowed=self.classifier is not None)
        if job is None:
            return
        self._answer(job)
        self.out._wake.emit()  # queued: the next job comes after pending events

    def _answer(self, job: Job[Any]) -> None:
        self.running = job
        try:
            result = job.run(self)
        except JobFailed as exc:
            log.info("%s failed: %s", type(job).__name__, exc)
            self.out.failed.emit(job, str(exc))
        except Exception as exc:  # a bug or an unexpected fault must not kill the worker, nor be lost
            log.exception("%s failed unexpectedly", type(job).__name__)
            self.out.failed.emit(job, internal_error(exc))
        else:
            if result is AGAIN:
                self.queue.put(job, first=True)  # its next step, before any other of its lane
            else:
                self.out.finished.emit(job, result)
        finally:
            self.running = None

    def _kick(self) -> None:
        if self.queue.wake_if_needed(batch_allowed=self.classifier is not None):
            self.out._wake.emit()

    # ---- what jobs use ----
    def require_classifier(self, why: str = "No model is loaded.") -> ClassifierLike:
        if self.classifier is None:
            raise JobFailed(why)
        return self.classifier

    def progress_of(self, job: Job[Any]) -> Callable[[int, int], None]:
        """A (done, total) callback for a long job, throttled, reported to its caller's ``on_progress``."""
        return throttled(lambda done, total: self.out.progress.emit(job, done, total))

    def say_loading(self, text: str) -> None:
        """What the model load is doing, for the status bar."""
        self.out.loading.emit(text)

    def use_model(self, clf: ClassifierLike, choice: ModelChoice) -> None:
        """A model is loaded: photos waiting for one go ahead (the load job's own answer follows)."""
        self.classifier, self.model = clf, choice
        runtime_facts(self.threads)  # a PyTorch runtime just loaded: its threads are set in this thread
        log.info("model loaded: %s on %s, %s %s", clf.source.describe(), clf.device, clf.backend, clf.precision)
        self._kick()


OnDone = Callable[[R], None]
OnFail = Callable[[str], None]
OnProgress = Callable[[int, int], None]


@dataclass
class _Asked:
    job: Job[Any]
    on_done: Callable[[Any], None] | None
    on_fail: OnFail | None
    on_progress: OnProgress | None


class Callbacks:
    """Who hears each job's answer: the callbacks its caller gave, by job, until the answer is delivered.
    A failure with no ``on_fail`` goes to ``unheard``; a job dropped unanswered (``drop``) is forgotten."""

    def __init__(self, unheard: Callable[[Job[Any], str], None]) -> None:
        self._asked: dict[int, _Asked] = {}  # by id(job); the entry holds the job, so the id stays its own
        self._unheard = unheard

    def add(self, job: Job[R], on_done: OnDone[R] | None, on_fail: OnFail | None, on_progress: OnProgress | None) -> None:
        self._asked[id(job)] = _Asked(job, on_done, on_fail, on_progress)

    def drop(self, job: Job[Any]) -> None:
        self._asked.pop(id(job), None)

    def _take(self, job: Job[Any]) -> _Asked | None:
        asked = self._asked.get(id(job))
        if asked is None or asked.job is not job:
            return None
        del self._asked[id(job)]
        return asked

    def done(self, job: Job[Any], result: object) -> None:
        asked = self._take(job)
        if asked is not None and asked.on_done is not None:
            asked.on_done(result)

    def failed(self, job: Job[Any], message: str) -> None:
        asked = self._take(job)
        if asked is not None and asked.on_fail is not None:
            asked.on_fail(message)
        elif asked is not None:
            self._unheard(job, message)

    def progress(self, job: Job[Any], done: int, total: int) -> None:
        asked = self._asked.get(id(job))
        if asked is not None and asked.job is job and asked.on_progress is not None:
            asked.on_progress(done, total)

    def waiting(self) -> int:
        """Jobs whose answer has not come yet."""
        return len(self._asked)


class Worker(QObject):
    """The window's only way to the model: ``submit(job, on_done, on_fail)``, one answer per job, delivered to
    those callbacks on the GUI thread.

    One QThread runs one job at a time. What the user asks for (a view, a recompute, a save, weights, device,
    download) goes before the next batch photo; the photo being computed always finishes first. The score of
    the photo shown is computed a pass at a time, taking turns with the batch photos (JobQueue). A failure whose
    caller gave no ``on_fail`` is sent on ``unheard`` (the window shows it: no failure is ever lost).
    """

    loading = Signal(str)  # what the model load is doing, for the status bar
    progress = Signal(object, int, int)  # job, done, total: the transport of on_progress
    finished = Signal(object, object)  # job, its result: the transport of on_done
    failed = Signal(object, str)  # job, what went wrong: the transport of on_fail
    unheard = Signal(object, str)  # job, message: a failure nobody asked to hear
    _wake = Signal()

    live: set[Worker] = set()  # every running worker, so tests can prove none is left behind

    def __init__(self, weights: str | None = None, device: str = "auto", parent: QObject | None = None,
                 pixel_ratio: float = 1.0, threads: int | None = None,
                 classifier_factory: ClassifierFactory | None = None, backend: Backend = "auto",
                 precision: Precision = "fp32", library: str | os.PathLike[str] | None = None) -> None:
        super().__init__(parent)
        self._queue = JobQueue()
        self._thread = QThread()
        self._thread.setObjectName("resnext-gui inference")
        self.callbacks = Callbacks(self.unheard.emit)  # each job's answer goes to its caller's callbacks
        self.first_model = ModelChoice(weights, device, backend, precision)  # what the first load job loads
        self._context = Context(self, self._queue, classifier_factory or default_factory, self.first_model,
                                pixel_ratio, threads, library)
        self._context.moveToThread(self._thread)
        self._thread.started.connect(self._context.start)
        # emitted from the worker thread itself as it ends: the library's connection is closed where it was made
        self._thread.finished.connect(self._context.shutdown, Qt.ConnectionType.DirectConnection)
        self._wake.connect(self._context.tick, Qt.ConnectionType.QueuedConnection)
        self._thread.finished.connect(self._context.deleteLater)
        # emitted on the worker thread, delivered to this object's thread (the GUI's), then to the callbacks
        self.finished.connect(self._done)
        self.failed.connect(self._failed)
        self.progress.connect(self._progress)

    # ---- life cycle ----
    def start(self) -> None:
        Worker.live.add(self)
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def stop(self, timeout_ms: int = 20000) -> bool:
        """Drop queued work, cancel what can be cancelled and end the thread. Mid-batch this takes one photo's
        time; while torch is still being imported it can take a few seconds (an import can't be interrupted)."""
        self._queue.drop_batch()
        for job in [*self._queue.queued(), self._context.running]:
            if isinstance(job, Cancellable):
                job.cancel.set()
        self._thread.quit()
        finished = self._thread.wait(timeout_ms)
        if finished:
            Worker.live.discard(self)
        return finished

    # ---- jobs ----
    def submit(self, job: Job[R], on_done: OnDone[R] | None = None, on_fail: OnFail | None = None,
               on_progress: OnProgress | None = None) -> Job[R]:
        """Queue ``job``; its answer comes to ``on_done(result)`` or ``on_fail(message)`` on the GUI thread, and a
        long job's progress to ``on_progress(done, total)``. Returns the job (``cancel`` takes it)."""
        self.callbacks.add(job, on_done, on_fail, on_progress)
        if self._queue.put(job):
            self._wake.emit()
        return job

    def cancel(self, job: Cancellable) -> None:
        """Stop ``job`` between two of its steps (or before it starts); it answers ``on_fail(CANCELLED)``."""
        job.cancel.set()

    def cancel_batch(self) -> list[Job[Any]]:
        """Drop the batch photos not yet started (the one being computed finishes); returns their jobs, which
        will not answer."""
        dropped = self._queue.drop_batch()
        for job in dropped:
            self.callbacks.drop(job)
        return dropped

    def pending(self) -> int:
        return self._queue.pending_batch()

    def keep_gallery(self, paths: list[str]) -> None:
        """The gallery to show at the next start (files, in order); written next, and again as the worker stops."""
        self._context.library.keep_gallery(paths)
        self._wake.emit()

    @Slot(object, object)
    def _done(self, job: Job[Any], result: object) -> None:
        self.callbacks.done(job, result)

    @Slot(object, str)
    def _failed(self, job: Job[Any], message: str) -> None:
        self.callbacks.failed(job, message)

    @Slot(object, int, int)
    def _progress(self, job: Job[Any], done: int, total: int) -> None:
        self.callbacks.progress(job, done, total)


class WorkerLike(Protocol):
    """What the window uses of the Worker (the tests' fake worker is held to it)."""

    first_model: ModelChoice

    @property
    def loading(self) -> Any: ...  # Signal(str)
    @property
    def unheard(self) -> Any: ...  # Signal(object, str)

    def start(self) -> None: ...
    def stop(self, timeout_ms: int = 20000) -> bool: ...
    def is_running(self) -> bool: ...
    def submit(self, job: Job[R], on_done: OnDone[R] | None = None, on_fail: OnFail | None = None,
               on_progress: OnProgress | None = None) -> Job[R]: ...
    def cancel(self, job: Cancellable) -> None: ...
    def cancel_batch(self) -> list[Job[Any]]: ...
    def pending(self) -> int: ...
    def keep_gallery(self, paths: list[str]) -> None: ...
