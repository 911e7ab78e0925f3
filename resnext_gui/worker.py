"""The Qt bridge: one QThread owns the Classifier; jobs go into two lanes (what the user asked for first), typed results come out as signals."""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QBuffer, QIODevice, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

if TYPE_CHECKING:
    from .core.classifier import Classifier, TopClass

DISPLAY_MAX_SIDE = 1280  # the photo kept for the view; the full decode never leaves the worker
THUMB_SIDE = 96  # logical pixels; drawn at the screen's pixel ratio
MAP_SIDE = 224  # heatmaps are sent upsampled to the model's input size, as 8-bit colour-map indices

PhotoSource = str | bytes | QImage  # a path, encoded image bytes, or image data without a file


# ---- jobs (GUI -> worker) ----
@dataclass
class ClassifyJob:
    """A photo of a batch: classified in turn, after anything the user asked for."""

    item_id: int
    source: PhotoSource
    layer: str = "layer4"


@dataclass
class RecomputeJob:
    """The selected photo again, with another Grad-CAM layer."""

    item_id: int
    source: PhotoSource
    layer: str


@dataclass
class ViewJob:
    """Decode a photo again for the view (its display copy was dropped to bound memory)."""

    item_id: int
    source: PhotoSource


@dataclass
class LoadJob:
    weights: str | None = None  # None: the lookup order
    device: str = "auto"
    explicit: bool = False  # True when the user chose it: a failure keeps the previous model
    backend: str | None = None  # auto | torch | openvino; None: as before
    precision: str | None = None  # fp32 | bf16; None: as before


@dataclass
class DownloadJob:
    variant: str = "v2"
    url: str | None = None


@dataclass
class TrainJob:
    """Teach new classes with the loaded backbone: a folder of class folders, or a list of class folders."""

    data: str | list[str]
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class SaveModelJob:
    """Copy a taught model (already written to the cache) to where the user chose."""

    source: str
    target: str


Job = ClassifyJob | RecomputeJob | ViewJob | LoadJob | DownloadJob | TrainJob | SaveModelJob


# ---- results (worker -> GUI) ----
@dataclass
class ModelInfo:
    device: str  # "CPU · 2 threads", "CUDA · <GPU name>"
    device_type: str
    weights: str  # a full description of the weights in use
    weights_short: str
    num_classes: int
    cuda_available: bool
    load_ms: float
    versions: dict = field(default_factory=dict)
    note: str | None = None  # e.g. the device asked for was not available
    backend: str = "torch"  # the runtime in use: "openvino" or "torch"
    precision: str = "fp32"
    bf16_native: bool = False  # whether this CPU computes bfloat16 natively (the bf16 option is offered)


@dataclass
class PhotoResult:
    item_id: int
    ok: bool
    name: str
    error: str | None = None
    top: list[TopClass] = field(default_factory=list)  # the core's own TopClass objects
    maps: np.ndarray | None = None  # (k, MAP_SIDE, MAP_SIDE) uint8 colour-map indices
    crop: tuple | None = None  # (left, top, right, bottom) as fractions of the photo's width and height
    display: QImage | None = None  # the photo at view size (at most DISPLAY_MAX_SIDE)
    thumb: QImage | None = None
    ms: float = 0.0
    device: str = ""
    layer: str = "layer4"
    note: str | None = None
    record: dict = field(default_factory=dict)  # the core's output record (what `classify` prints)
    encoded: bytes | None = None  # for image data without a file: the PNG the worker made of it
    size: tuple[int, int] | None = None  # (width, height) of the photo itself, as oriented


@dataclass
class Misclassified:
    """A validation photo the new model got wrong, with the maps of its true and its predicted class."""

    path: str
    true: str
    predicted: str
    prob: float
    display: QImage | None = None  # the photo at view size; None when it was not explained
    maps: np.ndarray | None = None  # (2, MAP_SIDE, MAP_SIDE) colour-map indices: true class, predicted class
    crop: tuple | None = None  # fractions of the photo, as PhotoResult.crop


@dataclass
class TrainOutcome:
    model_path: str  # the new model, written to the user's cache; "Use" loads it, "Save…" copies it
    summary: dict  # what `resnext-gui train` prints
    labels: list[str]
    mistakes: list[Misclassified]


MAX_EXPLAINED = 24  # misclassified photos given heatmaps right after training (one forward pass each)


def qimage_from_rgb(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # own the pixels


def _display_copy(pil_image: Any) -> QImage:
    from PIL import Image

    im = pil_image
    if max(im.size) > DISPLAY_MAX_SIDE:
        im = im.copy()
        im.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE), Image.Resampling.BILINEAR)
    return qimage_from_rgb(np.asarray(im))


def _map_indices(cams: np.ndarray) -> np.ndarray:
    """Maps in [0, 1] -> (k, MAP_SIDE, MAP_SIDE) colour-map indices, upsampled as the CLI's overlays are."""
    from .core.cam import upsample

    return np.stack([np.clip(np.rint(upsample(m, (MAP_SIDE, MAP_SIDE)) * 255), 0, 255).astype(np.uint8) for m in cams])


def qimage_to_png_bytes(image: QImage) -> bytes:
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


class JobQueue:
    """Two lanes shared by the GUI thread and the worker: interactive jobs are always taken first.

    Batch photos wait while there is no model. ``put`` says whether the worker needs waking; the worker
    keeps itself awake while jobs remain, so at most one wake-up is ever on its way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interactive: deque[Job] = deque()
        self._batch: deque[ClassifyJob] = deque()
        self._awake = False

    def put(self, job: Job, interactive: bool) -> bool:
        with self._lock:
            (self._interactive if interactive else self._batch).append(job)  # type: ignore[arg-type]
            wake, self._awake = not self._awake, True
            return wake

    def take(self, batch_allowed: bool) -> Job | None:
        with self._lock:
            if self._interactive:
                return self._interactive.popleft()
            if batch_allowed and self._batch:
                return self._batch.popleft()
            self._awake = False
            return None

    def wake_if_needed(self, batch_allowed: bool) -> bool:
        with self._lock:
            has_work = bool(self._interactive) or (batch_allowed and bool(self._batch))
            wake = has_work and not self._awake
            self._awake = self._awake or wake
            return wake

    def drop_batch(self) -> list[int]:
        """Remove the batch photos not yet started; returns their item ids."""
        with self._lock:
            dropped = [job.item_id for job in self._batch]
            self._batch.clear()
            return dropped

    def pending_batch(self) -> int:
        with self._lock:
            return len(self._batch)


ClassifierFactory = Callable[..., "Classifier"]  # (weights, device, backend=, precision=, progress=)


def _default_factory(weights: str | None, device: str, backend: str = "auto", precision: str = "fp32",
                     progress: Callable[[str], None] | None = None) -> Classifier:
    from .core.classifier import Classifier

    return Classifier(weights, device=device, backend=backend, precision=precision, progress=progress)


def _throttled(emit: Callable[[int, int], None], every_s: float = 0.05) -> Callable[[int, int], None]:
    """A (done, total) progress callback that passes on at most one update per ``every_s``, and always the last."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or done == total:
            last[0] = now
            emit(done, total)

    return progress


class _Runner(QObject):
    """Lives in the worker thread and does the work; reports through the facade's signals."""

    def __init__(self, out: Worker, queue: JobQueue, factory: ClassifierFactory, weights: str | None, device: str,
                 pixel_ratio: float, threads: int | None, backend: str = "auto", precision: str = "fp32") -> None:
        super().__init__()
        self.out, self.queue, self.factory = out, queue, factory
        self.weights, self.device = weights, device
        self.backend, self.precision = backend, precision
        self.pixel_ratio, self.threads = pixel_ratio, threads
        self.clf: Any = None
        self.download_cancelled = threading.Event()
        self.train_cancelled = threading.Event()

    @Slot()
    def start(self) -> None:
        import torch

        # Thread settings are per thread: set them here, in the thread that runs the model.
        torch.set_num_threads(self.threads or torch.get_num_threads())
        self._load(LoadJob(self.weights, self.device, explicit=False))
        self._kick()

    @Slot()
    def tick(self) -> None:
        """One job, then let the event loop breathe (a stop request is seen between two photos)."""
        job = self.queue.take(batch_allowed=self.clf is not None)
        if job is None:
            return
        try:
            self._run(job)
        except Exception as exc:  # a bug or an unexpected fault must not kill the worker, nor be lost
            self._fail(job, f"internal error: {exc!r}")
        self.out._wake.emit()  # queued: the next job comes after pending events

    def _kick(self) -> None:
        if self.queue.wake_if_needed(batch_allowed=self.clf is not None):
            self.out._wake.emit()

    def _run(self, job: Job) -> None:
        if isinstance(job, ClassifyJob):
            self.out.classified.emit(self._classify(job.item_id, job.source, job.layer))
        elif isinstance(job, RecomputeJob):
            if self.clf is None:
                self.out.recomputeFailed.emit(job.item_id, "No model is loaded.")
                return
            res = self._classify(job.item_id, job.source, job.layer)
            if res.ok:
                self.out.recomputed.emit(res)
            else:
                self.out.recomputeFailed.emit(job.item_id, res.error or "the photo could not be read again")
        elif isinstance(job, ViewJob):
            self._view(job)
        elif isinstance(job, LoadJob):
            self._load(job)
        elif isinstance(job, DownloadJob):
            self._download(job)
        elif isinstance(job, TrainJob):
            self._train(job)
        elif isinstance(job, SaveModelJob):
            self._save_model(job)

    def _fail(self, job: Job, message: str) -> None:
        """Every job kind has its own failure channel, so the window never waits on a lost answer."""
        if isinstance(job, ClassifyJob):
            self.out.classified.emit(PhotoResult(job.item_id, False, _name_of(job.source), error=message,
                                                 record={"path": _name_of(job.source), "ok": False, "error": message}))
        elif isinstance(job, RecomputeJob):
            self.out.recomputeFailed.emit(job.item_id, message)
        elif isinstance(job, ViewJob):
            self.out.viewFailed.emit(job.item_id, message)
        elif isinstance(job, LoadJob):
            self.out.modelFailed.emit(message)
        elif isinstance(job, DownloadJob):
            self.out.downloadFinished.emit(False, message)
        elif isinstance(job, TrainJob):
            self.out.trainFailed.emit(message)
        elif isinstance(job, SaveModelJob):
            self.out.modelSaved.emit(False, message)

    # ---- jobs ----
    def _load(self, job: LoadJob) -> None:
        from .core.errors import DeviceError, NoWeightsError, ResnextGuiError
        from .core.model import resolve_device

        self.out.loading.emit("Loading model…")
        device, note = job.device, None
        try:
            resolve_device(device)
        except DeviceError as exc:  # e.g. CUDA remembered from another session, no GPU here now
            device, note = "cpu", f"{exc} Using the CPU."
        backend, precision = job.backend or self.backend, job.precision or self.precision
        try:
            options = {"backend": backend, "precision": precision,
                       "progress": self.out.loading.emit}  # a first conversion shows its steps in the status bar
            clf = self.factory(job.weights, device, **(options if _takes_options(self.factory) else {}))
            notes = [n for n in (note, getattr(clf, "note", None)) if n]  # e.g. why OpenVINO is not in use
            info = self._info(clf, "; ".join(notes) or None)
        except NoWeightsError as exc:
            self.out.modelMissing.emit(str(exc))
            return
        except Exception as exc:  # our own errors, and whatever a device driver raises
            message = str(exc) if isinstance(exc, ResnextGuiError) else f"could not load the model: {exc!r}"
            if self.clf is None and not job.explicit:
                self.out.modelMissing.emit(message)
            else:
                self.out.modelFailed.emit(message)
            return
        self.clf, self.weights, self.device = clf, job.weights, job.device
        self.backend, self.precision = backend, precision
        # torch, the model and Qt are some 350,000 objects that live as long as the app: out of the collector's
        # full passes, which otherwise take 200-500 ms each (holding the interpreter, so the window freezes).
        gc.freeze()
        self.out.modelReady.emit(info)
        self._kick()

    def _info(self, clf: Any, note: str | None) -> ModelInfo:
        import torch
        import torchvision

        from .core.backend import native_bf16
        from .core.model import describe_device

        source = clf.source
        backend = getattr(clf, "backend", "torch")
        precision = getattr(clf, "precision", "fp32")
        runtime = ("OpenVINO" if backend == "openvino" else "PyTorch") + (" bf16" if precision == "bf16" else "")
        return ModelInfo(
            device=f"{describe_device(clf.device)} · {runtime}",
            backend=backend, precision=precision, bf16_native=clf.device.type == "cpu" and native_bf16(),
            device_type=clf.device.type,
            weights=source.describe(),
            weights_short=source.variant.describe() if source.variant else source.path.name,
            num_classes=len(clf.labels),
            cuda_available=torch.cuda.is_available(),
            load_ms=clf.load_ms,
            versions={"torch": torch.__version__, "torchvision": torchvision.__version__},
            note=note,
        )

    def _classify(self, item_id: int, source: PhotoSource, layer: str) -> PhotoResult:
        encoded = qimage_to_png_bytes(source) if isinstance(source, QImage) else None
        data = encoded if encoded is not None else source
        pred = self.clf.classify(data, keep_image=True, layer=layer)
        name = pred.path
        if not pred.ok:
            return PhotoResult(item_id, False, name, error=pred.error, record=pred.to_record(), encoded=encoded)
        display = _display_copy(pred.image)
        width, height = pred.image_size
        left, top, right, bottom = pred.crop
        side = round(THUMB_SIDE * self.pixel_ratio)
        thumb = display.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        thumb.setDevicePixelRatio(self.pixel_ratio)
        return PhotoResult(
            item_id, True, name, top=list(pred.top), maps=_map_indices(pred.cams),
            crop=(left / width, top / height, right / width, bottom / height),
            display=display, thumb=thumb, ms=pred.ms, device=pred.device, layer=pred.layer,
            note=pred.note, record=pred.to_record(), encoded=encoded, size=(width, height),
        )

    def _view(self, job: ViewJob) -> None:
        from .core.errors import ImageError
        from .core.preprocess import load_image

        source = qimage_to_png_bytes(job.source) if isinstance(job.source, QImage) else job.source
        try:
            decoded = load_image(source, min_side=DISPLAY_MAX_SIDE)
        except ImageError as exc:
            self.out.viewFailed.emit(job.item_id, str(exc))
            return
        self.out.viewReady.emit(job.item_id, _display_copy(decoded.image))

    def _download(self, job: DownloadJob) -> None:
        from .core import weights as W

        self.download_cancelled.clear()
        progress = _throttled(self.out.downloadProgress.emit)
        try:
            path = W.fetch(W.VARIANTS[job.variant], url=job.url, progress=progress,
                           cancelled=self.download_cancelled.is_set)
        except W.DownloadCancelled:
            self.out.downloadFinished.emit(False, "Download cancelled; nothing was saved.")
            return
        except Exception as exc:  # a network or disk fault of any kind ends the download with a message
            from .core.errors import ResnextGuiError

            text = str(exc) if isinstance(exc, ResnextGuiError) else f"the download failed: {exc!r}"
            self.out.downloadFinished.emit(False, text)
            return
        self.out.downloadFinished.emit(True, str(path))
        self._load(LoadJob(None, self.device))


    def _train(self, job: TrainJob) -> None:
        from .core import train as T
        from .core.errors import ResnextGuiError

        if self.clf is None:
            self.out.trainFailed.emit("No model is loaded: teaching new classes needs the ImageNet weights "
                                      "(File → Download ImageNet Weights…).")
            return
        self.train_cancelled.clear()
        progress = _throttled(self.out.trainProgress.emit)
        try:
            result = T.train(self.clf, job.data, job.val_fraction, job.seed, progress=progress,
                             cancelled=self.train_cancelled.is_set)
            path = T.save(self.clf, result, T.new_model_path())
        except ResnextGuiError as exc:
            self.out.trainFailed.emit(str(exc))
            return
        except OSError as exc:
            self.out.trainFailed.emit(f"the new model could not be written: {exc.strerror or exc}")
            return
        mistakes = []
        for i, m in enumerate(result.mistakes):
            entry = Misclassified(str(m.path), result.labels[m.true], result.labels[m.predicted], m.prob)
            if i < MAX_EXPLAINED:
                try:
                    item, cams = T.explain(self.clf, result, m.path, [m.true, m.predicted])
                    width, height = item.decoded.original_size
                    left, top, right, bottom = item.crop
                    entry.display = _display_copy(item.decoded.image)
                    entry.maps = _map_indices(cams)
                    entry.crop = (left / width, top / height, right / width, bottom / height)
                except Exception:  # the photo went away since: it is still listed, without maps
                    pass
            mistakes.append(entry)
        self.out.trainFinished.emit(TrainOutcome(str(path), result.summary(), list(result.labels), mistakes))

    def _save_model(self, job: SaveModelJob) -> None:
        from .core.train import copy_model

        try:
            copy_model(job.source, job.target)
        except Exception as exc:  # a full or read-only disk, a folder at that name...
            self.out.modelSaved.emit(False, f"Could not save {job.target}: {getattr(exc, 'strerror', None) or exc}")
            return
        self.out.modelSaved.emit(True, job.target)


def _takes_options(factory: Callable) -> bool:
    """Whether a classifier factory takes backend/precision/progress (one written for (weights, device) still works)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == "backend" for p in params)


def _name_of(source: PhotoSource) -> str:
    if isinstance(source, QImage):
        return "image data"
    from .core.preprocess import source_name

    return source_name(source)


class Worker(QObject):
    """The window's only way to the model: a typed API in, signals out (delivered on the GUI thread).

    One QThread runs one job at a time. What the user asks for (a view, a recompute, weights, device,
    download) goes before the next batch photo; the photo being computed always finishes first.
    """

    loading = Signal(str)
    modelReady = Signal(object)  # ModelInfo
    modelMissing = Signal(str)
    modelFailed = Signal(str)
    classified = Signal(object)  # PhotoResult (ok or not)
    recomputed = Signal(object)  # PhotoResult
    recomputeFailed = Signal(int, str)
    viewReady = Signal(int, object)  # item id, QImage
    viewFailed = Signal(int, str)
    downloadProgress = Signal(int, int)
    downloadFinished = Signal(bool, str)  # ok, saved path or the reason
    trainProgress = Signal(int, int)  # photos whose features are ready, photos in all
    trainFinished = Signal(object)  # TrainOutcome
    trainFailed = Signal(str)
    modelSaved = Signal(bool, str)  # ok, saved path or the reason
    _wake = Signal()

    live: set[Worker] = set()  # every running worker, so tests can prove none is left behind

    def __init__(self, weights: str | None = None, device: str = "auto", parent: QObject | None = None,
                 pixel_ratio: float = 1.0, threads: int | None = None,
                 classifier_factory: ClassifierFactory | None = None, backend: str = "auto",
                 precision: str = "fp32") -> None:
        super().__init__(parent)
        self._queue = JobQueue()
        self._thread = QThread()
        self._thread.setObjectName("resnext-gui inference")
        self._runner = _Runner(self, self._queue, classifier_factory or _default_factory, weights, device,
                               pixel_ratio, threads, backend, precision)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.start)
        self._wake.connect(self._runner.tick, Qt.ConnectionType.QueuedConnection)
        self._thread.finished.connect(self._runner.deleteLater)
        self.weights = weights  # the file asked for last (None: the lookup order)

    # ---- life cycle ----
    def start(self) -> None:
        Worker.live.add(self)
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def stop(self, timeout_ms: int = 20000) -> bool:
        """Drop queued work and end the thread. Mid-batch this takes one photo's time; while torch is
        still being imported it can take a few seconds (an import can't be interrupted)."""
        self._queue.drop_batch()
        self._runner.download_cancelled.set()
        self._runner.train_cancelled.set()
        self._thread.quit()
        finished = self._thread.wait(timeout_ms)
        if finished:
            Worker.live.discard(self)
        return finished

    # ---- requests ----
    def _put(self, job: Job, interactive: bool) -> None:
        if self._queue.put(job, interactive):
            self._wake.emit()

    def classify(self, item_id: int, source: PhotoSource, layer: str = "layer4") -> None:
        self._put(ClassifyJob(item_id, _own(source), layer), interactive=False)

    def recompute(self, item_id: int, source: PhotoSource, layer: str) -> None:
        self._put(RecomputeJob(item_id, _own(source), layer), interactive=True)

    def view(self, item_id: int, source: PhotoSource) -> None:
        self._put(ViewJob(item_id, _own(source)), interactive=True)

    def load(self, weights: str | None, device: str, explicit: bool = True, backend: str | None = None,
             precision: str | None = None) -> None:
        """Switch weights, device, CPU runtime or precision; takes effect for every photo still waiting."""
        self.weights = weights
        self._put(LoadJob(weights, device, explicit, backend, precision), interactive=True)

    def download(self, variant: str = "v2", url: str | None = None) -> None:
        self._put(DownloadJob(variant, url), interactive=True)

    def cancel_download(self) -> None:
        self._runner.download_cancelled.set()

    def train(self, data: str | list[str], val_fraction: float = 0.2, seed: int = 0) -> None:
        """Teach new classes with the current backbone (off the GUI thread); answers trainProgress, then
        trainFinished or trainFailed."""
        self._put(TrainJob(data, val_fraction, seed), interactive=True)

    def cancel_training(self) -> None:
        self._runner.train_cancelled.set()

    def save_model(self, source: str, target: str) -> None:
        self._put(SaveModelJob(source, target), interactive=True)

    def cancel_batch(self) -> list[int]:
        """Drop the batch photos not yet started (the one being computed finishes); returns their ids."""
        return self._queue.drop_batch()

    def pending(self) -> int:
        return self._queue.pending_batch()


def _own(source: PhotoSource) -> PhotoSource:
    return source.copy() if isinstance(source, QImage) else source  # a QImage crossing threads gets its own pixels
