"""The Qt bridge: one QThread owns the classifier; jobs run themselves in three lanes (what the user asked for first).

Every job answers once: ``finished(job, result)`` or ``failed(job, message)``. Besides those, the worker
says what the model is doing (``loading``) and how far a long job has come (``progress``).
"""

from __future__ import annotations

import gc
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

import numpy as np
from PySide6.QtCore import QBuffer, QIODevice, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage, QImageWriter

from .core.throttle import throttled

if TYPE_CHECKING:
    from .core.classifier import Classifier
    from .core.faithfulness import Faithfulness
    from .core.prediction import Prediction, TopClass
    from .core.preprocess import Prepared, Source
    from .core.train import DataSet
    from .core.weights import WeightsSource

DISPLAY_MAX_SIDE = 1280  # the photo kept for the view; the full decode never leaves the worker
THUMB_SIDE = 96  # logical pixels; drawn at the screen's pixel ratio
MAP_SIDE = 224  # heatmaps are sent upsampled to the model's input size, as 8-bit colour-map indices
MAX_EXPLAINED = 24  # misclassified photos given heatmaps right after training (one forward pass each)

PhotoSource = str | bytes | QImage  # a path, encoded image bytes, or image data without a file


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
    def backend(self) -> str: ...  # the runtime in use: "openvino" or "torch"
    @property
    def device(self) -> Any: ...  # a core.devices.Device; core.devices.describe names it
    precision: str
    note: str | None  # why the runtime asked for is not the one in use, if it is not
    load_ms: float

    def classify(self, source: Source, keep_image: bool = False, layer: str | None = None,
                 method: str | None = None) -> Prediction: ...
    def prepare(self, source: Source) -> Prepared: ...
    def score_cams(self, item: Prepared, classes: Sequence[int], layer: str = "layer4",
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> np.ndarray: ...
    def faithfulness_passes(self, item: Prepared, class_index: int,
                            cam: np.ndarray) -> Generator[int, None, Faithfulness]: ...


class ClassifierFactory(Protocol):
    def __call__(self, weights: str | None, device: str, *, backend: str, precision: str,
                 progress: Callable[[str], None] | None) -> ClassifierLike: ...


def _default_factory(weights: str | None, device: str, *, backend: str = "auto", precision: str = "fp32",
                     progress: Callable[[str], None] | None = None) -> ClassifierLike:
    from .core.classifier import Classifier

    return Classifier(weights, device=device, backend=backend, precision=precision, progress=progress)


def runtime_facts(threads: int | None) -> bool:
    """Set the thread count in the thread that runs the model (PyTorch's is per thread; no-op without it) and
    say whether a CUDA GPU is there (torch is imported for that only where a GPU is possible at all)."""
    from .core import devices

    devices.set_threads(threads)
    return devices.cuda_available()


class JobFailed(Exception):
    """A job could not do what it was asked; the message is what the user reads."""


# ---- results (worker -> GUI) ----
@dataclass
class ModelInfo:
    device: str  # "CPU · 2 threads · OpenVINO", "CUDA · <GPU name> · PyTorch"
    device_type: str
    weights: str  # a full description of the weights in use
    weights_short: str
    num_classes: int
    cuda_available: bool
    load_ms: float
    versions: dict[str, str] = field(default_factory=dict)
    note: str | None = None  # e.g. the device asked for was not available
    backend: str = "torch"  # the runtime in use: "openvino" or "torch"
    precision: str = "fp32"
    bf16_native: bool = False  # whether this CPU computes bfloat16 natively (the bf16 option is offered)


@dataclass
class ModelMissing:
    """A load found no weights (or none it could use, with no model yet): photos wait until there are some."""

    reason: str


@dataclass
class PhotoResult:
    item_id: int
    ok: bool
    name: str
    error: str | None = None
    top: list[TopClass] = field(default_factory=list)  # the core's own TopClass objects
    maps: np.ndarray | None = None  # (k, MAP_SIDE, MAP_SIDE) uint8 colour-map indices
    cams: np.ndarray | None = None  # (k, h, w) float32 in [0, 1]: the same maps at the layer's own size (faithfulness)
    crop: tuple[float, float, float, float] | None = None  # (left, top, right, bottom), fractions of width and height
    display: QImage | None = None  # the photo at view size (at most DISPLAY_MAX_SIDE)
    thumb: QImage | None = None
    ms: float = 0.0
    device: str = ""
    layer: str = "layer4"
    method: str = "gradcam"  # the CAM method of ``maps`` (core.cam.METHODS)
    note: str | None = None
    record: dict[str, Any] = field(default_factory=dict)  # the core's output record (what `classify` prints)
    encoded: bytes | None = None  # for image data without a file: the PNG the worker made of it
    size: tuple[int, int] | None = None  # (width, height) of the photo itself, as oriented
    cached: bool = False  # answered from the results library (no forward pass)

    @classmethod
    def failure(cls, item_id: int, name: str, message: str) -> PhotoResult:
        """A photo whose job failed: listed as not classified, with the reason (as `classify` records it)."""
        return cls(item_id, False, name, error=message, record={"path": name, "ok": False, "error": message})


@dataclass
class Misclassified:
    """A validation photo the new model got wrong, with the maps of its true and its predicted class."""

    path: str
    true: str
    predicted: str
    prob: float
    display: QImage | None = None  # the photo at view size; None when it was not explained
    maps: np.ndarray | None = None  # (2, MAP_SIDE, MAP_SIDE) colour-map indices: true class, predicted class
    crop: tuple[float, float, float, float] | None = None  # fractions of the photo, as PhotoResult.crop


@dataclass
class TrainOutcome:
    model_path: str  # the new model, written to the user's cache; "Use" loads it, "Save…" copies it
    summary: dict[str, Any]  # what `resnext-gui train` prints
    labels: list[str]
    mistakes: list[Misclassified]


# ---- jobs (GUI -> worker): each one runs itself with the worker's context ----
Lane = Literal["interactive", "batch", "background"]


@dataclass
class Job:
    # "interactive": what the user asked for, taken first. "batch": a photo of a batch, after those.
    # "background": work for the photo shown that takes turns with the batch photos, a step at a time (AGAIN)
    lane: ClassVar[Lane] = "interactive"

    def run(self, ctx: _Runner) -> object:
        raise NotImplementedError


class _Again:
    def __repr__(self) -> str:
        return "AGAIN"


AGAIN = _Again()  # what a background job's run answers when it did one step of several: it goes back in line


@dataclass
class ClassifyJob(Job):
    """A photo of a batch: classified in turn, after anything the user asked for. A file that can't be read
    is an answer (a PhotoResult that is not ok), not a failure."""

    lane: ClassVar[Lane] = "batch"
    item_id: int
    source: PhotoSource
    layer: str = "layer4"
    method: str = "gradcam"  # a one-pass method (Score-CAM is a ScoreCamJob, for the photo shown only)

    @property
    def name(self) -> str:
        return _name_of(self.source)

    def run(self, ctx: _Runner) -> PhotoResult:
        clf = ctx.require_classifier()
        known = ctx.library.answer(clf, self.item_id, self.source, self.layer, self.method)
        if known is not None:
            return known
        return _photo_result(clf, self.item_id, self.source, self.layer, self.method, ctx.pixel_ratio,
                             keep=ctx.library.keeper(clf))


@dataclass
class RecomputeJob(Job):
    """The selected photo again, with another CAM layer or one-pass method."""

    item_id: int
    source: PhotoSource
    layer: str
    method: str = "gradcam"

    def run(self, ctx: _Runner) -> PhotoResult:
        res = _photo_result(ctx.require_classifier(), self.item_id, self.source, self.layer, self.method,
                            ctx.pixel_ratio)
        if not res.ok:
            raise JobFailed(res.error or "the photo could not be read again")
        return res


@dataclass
class ScoreCamMaps:
    """Score-CAM maps of one photo's classes, as PhotoResult.maps are sent."""

    item_id: int
    layer: str
    classes: tuple[int, ...]
    maps: np.ndarray  # (k, MAP_SIDE, MAP_SIDE) uint8 colour-map indices, one per class of ``classes``
    cams: np.ndarray  # (k, h, w) float32 in [0, 1], at the layer's own size


@dataclass(eq=False)
class ScoreCamJob(Job):
    """Score-CAM of the photo shown: a forward pass per activation map, batched, with progress; ``cancel``
    stops it between two batches (it then fails with CANCELLED). Never asked for a whole batch of photos."""

    item_id: int
    source: PhotoSource
    layer: str
    classes: tuple[int, ...]  # the photo's top classes, best first
    cancel: threading.Event = field(default_factory=threading.Event)

    def run(self, ctx: _Runner) -> ScoreCamMaps:
        clf = ctx.require_classifier()
        item = _prepared(clf, self.source, self.cancel)
        cams = _cancellable(lambda: clf.score_cams(item, list(self.classes), self.layer,
                                                  progress=ctx.progress_of(self), cancelled=self.cancel.is_set))
        cams = np.asarray(cams, dtype=np.float32)
        return ScoreCamMaps(self.item_id, self.layer, self.classes, _map_indices(cams), cams)


@dataclass(eq=False)
class FaithfulnessJob(Job):
    """How faithful one map is to the model (deletion / insertion, against a random map) for the photo and class
    shown: four batched passes, one per turn, so a save, a view or the next batch photo never waits for all four.
    Answers a core Faithfulness; ``cancel``: superseded, fails with CANCELLED before its next pass, as it does when
    another model was loaded in between."""

    lane: ClassVar[Lane] = "background"
    item_id: int
    source: PhotoSource
    class_index: int
    cam: np.ndarray  # (h, w) float32 in [0, 1]: the map shown, at the layer's own size
    method: str = "gradcam"
    layer: str = "layer4"
    cancel: threading.Event = field(default_factory=threading.Event)
    _passes: Generator[int, None, Faithfulness] | None = field(default=None, init=False, repr=False)
    _model: ClassifierLike | None = field(default=None, init=False, repr=False)

    def run(self, ctx: _Runner) -> Faithfulness | _Again:
        clf = ctx.require_classifier()
        if self._passes is None:
            item = _prepared(clf, self.source, self.cancel)
            self._model = clf
            self._passes = _cancellable(lambda: clf.faithfulness_passes(item, self.class_index, self.cam))
        passes = self._passes
        if self.cancel.is_set() or clf is not self._model:
            passes.close()
            raise JobFailed(CANCELLED if self.cancel.is_set() else "another model was loaded meanwhile")
        try:
            _cancellable(lambda: next(passes))
        except StopIteration as end:
            figures: Faithfulness = end.value
            return figures
        return AGAIN


CANCELLED = "Cancelled."


def _prepared(clf: ClassifierLike, source: PhotoSource, cancel: threading.Event) -> Prepared:
    """The photo decoded again for a job on the photo shown (a job cancelled while it waited does nothing)."""
    from .core.errors import ResnextGuiError

    if cancel.is_set():
        raise JobFailed(CANCELLED)
    data = qimage_to_png_bytes(source) if isinstance(source, QImage) else source
    try:
        return clf.prepare(cast("Source", data))
    except ResnextGuiError as exc:
        raise JobFailed(str(exc)) from exc
    except Exception as exc:  # the file went away or changed since it was classified
        raise JobFailed(f"the photo could not be read again ({type(exc).__name__})") from exc


_R = TypeVar("_R")


def _cancellable(compute: Callable[[], _R]) -> _R:
    from .core.errors import Cancelled, ResnextGuiError

    try:
        return compute()
    except Cancelled as exc:
        raise JobFailed(CANCELLED) from exc
    except ResnextGuiError as exc:
        raise JobFailed(str(exc)) from exc


@dataclass
class ViewJob(Job):
    """Decode a photo again for the view (its display copy was dropped to bound memory); answers a QImage.
    ``full``: every pixel of the photo (the view zoomed past its display copy, or Save Overlay)."""

    item_id: int
    source: PhotoSource
    full: bool = False

    def run(self, ctx: _Runner) -> QImage:
        from .core.errors import ImageError
        from .core.preprocess import load_image

        source = qimage_to_png_bytes(self.source) if isinstance(self.source, QImage) else self.source
        try:
            decoded = load_image(source, min_side=None if self.full else DISPLAY_MAX_SIDE)
        except ImageError as exc:
            raise JobFailed(str(exc)) from exc
        return qimage_from_rgb(np.asarray(decoded.image)) if self.full else _display_copy(decoded.image)


@dataclass
class LoadJob(Job):
    """Weights, device, CPU runtime or precision; answers ModelInfo, or ModelMissing when there are no weights."""

    weights: str | None = None  # None: the lookup order
    device: str = "auto"
    explicit: bool = False  # True when the user chose it: a failure keeps the previous model
    backend: str | None = None  # auto | torch | openvino; None: as before
    precision: str | None = None  # fp32 | bf16; None: as before

    def run(self, ctx: _Runner) -> ModelInfo | ModelMissing:
        return ctx.load(self)


@dataclass
class DownloadJob(Job):
    """Fetch and verify the official weights; answers the saved path, then the worker loads them."""

    variant: str = "v2"
    url: str | None = None

    def run(self, ctx: _Runner) -> str:
        from .core import weights
        from .core.errors import ResnextGuiError

        ctx.download_cancelled.clear()
        try:
            path = weights.fetch(weights.VARIANTS[self.variant], url=self.url, progress=ctx.progress_of(self),
                                 cancelled=ctx.download_cancelled.is_set)
        except weights.DownloadCancelled as exc:
            raise JobFailed("Download cancelled; nothing was saved.") from exc
        except ResnextGuiError as exc:
            raise JobFailed(str(exc)) from exc
        except Exception as exc:  # a network or disk fault of any kind ends the download with a message
            raise JobFailed(f"the download failed: {exc!r}") from exc
        ctx.then(LoadJob(None, ctx.device))
        return str(path)


@dataclass
class TrainJob(Job):
    """Teach new classes with the loaded backbone: a folder of class folders, or a list of class folders."""

    data: str | list[str]
    val_fraction: float = 0.2
    seed: int = 0

    def run(self, ctx: _Runner) -> TrainOutcome:
        from .core import train
        from .core.errors import ResnextGuiError

        clf = cast("Classifier", ctx.require_classifier("No model is loaded: teaching new classes needs the "
                                                        "ImageNet weights (File → Download ImageNet Weights…)."))
        ctx.train_cancelled.clear()
        try:
            result = train.train(clf, self.data, self.val_fraction, self.seed, progress=ctx.progress_of(self),
                                 cancelled=ctx.train_cancelled.is_set)
            path = train.save(clf, result, train.new_model_path())
        except ResnextGuiError as exc:
            raise JobFailed(str(exc)) from exc
        except OSError as exc:
            raise JobFailed(f"the new model could not be written: {exc.strerror or exc}") from exc
        mistakes = []
        for i, m in enumerate(result.mistakes):
            entry = Misclassified(str(m.path), result.labels[m.true], result.labels[m.predicted], m.prob)
            if i < MAX_EXPLAINED:
                try:
                    item, cams = train.explain(clf, result, m.path, [m.true, m.predicted])
                    width, height = item.decoded.original_size
                    left, top, right, bottom = item.crop
                    entry.display = _display_copy(item.decoded.image)
                    entry.maps = _map_indices(cams)
                    entry.crop = (left / width, top / height, right / width, bottom / height)
                except Exception:  # the photo went away since: it is still listed, without maps
                    pass
            mistakes.append(entry)
        return TrainOutcome(str(path), result.summary(), list(result.labels), mistakes)


@dataclass
class CountJob(Job):
    """The classes Teach would learn and each one's photos, listed by name (no photo is read) before training."""

    data: str | list[str]

    def run(self, ctx: _Runner) -> DataSet:
        from .core import train
        from .core.errors import ResnextGuiError

        try:
            return train.scan(self.data)
        except ResnextGuiError as exc:  # too few classes or photos, a folder that can't be read
            raise JobFailed(str(exc)) from exc


@dataclass
class SaveModelJob(Job):
    """Copy a taught model (already written to the cache) to where the user chose; answers the target path."""

    source: str
    target: str

    def run(self, ctx: _Runner) -> str:
        from .core.train import copy_model

        try:
            copy_model(self.source, self.target)
        except OSError as exc:  # a full or read-only disk, a folder at that name...
            raise JobFailed(f"Could not save {self.target}: {exc.strerror or exc}") from exc
        except Exception as exc:
            raise JobFailed(f"Could not save {self.target}: {exc}") from exc
        return self.target


@dataclass
class SaveImageJob(Job):
    """Save Overlay's file: the image encoded as PNG (``text`` as its text chunks) and written whole or not at
    all, off the GUI thread; answers the path written."""

    path: str
    image: QImage
    text: dict[str, str] = field(default_factory=dict)

    def run(self, ctx: _Runner | None) -> str:
        write_png(self.image, self.path, self.text)
        return self.path


def write_png(image: QImage, path: str, text: dict[str, str]) -> None:
    """Encode ``image`` as PNG and write it as the export files are (core.files.atomic_file: a temporary file
    renamed into place, an existing file's mode kept); a folder, a named pipe or a device at ``path`` is refused.
    JobFailed with the reason (a full disk, a read-only folder...); an earlier file at ``path`` is then untouched."""
    from pathlib import Path

    from .core.files import NotRegularFile, atomic_file, refuse_special

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buf, b"png")
    for key, value in text.items():
        writer.setText(key, value)
    if not writer.write(image):
        raise JobFailed(f"Could not save {path}: the image could not be encoded ({writer.errorString()})")
    data = bytes(buf.data().data())
    try:
        refuse_special(path)
        with atomic_file(Path(path), shared=True, keep_mode=True) as fh:
            fh.write(data)
    except NotRegularFile as exc:
        raise JobFailed(f"Could not save {path}: {exc}; choose another file name") from exc
    except OSError as exc:
        raise JobFailed(f"Could not save {path}: {exc.strerror or exc}") from exc


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

    maps = upsample(np.asarray(cams, dtype=np.float32), (MAP_SIDE, MAP_SIDE))  # all k at once
    maps *= np.float32(255)
    np.rint(maps, out=maps)
    np.clip(maps, 0, 255, out=maps)
    return maps.astype(np.uint8)


def qimage_to_png_bytes(image: QImage) -> bytes:
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; PySide takes only str here
    return bytes(buf.data().data())


def _photo_result(clf: ClassifierLike, item_id: int, source: PhotoSource, layer: str, method: str,
                  pixel_ratio: float, keep: Callable[[PhotoSource, Prediction], str | None] | None = None) -> PhotoResult:
    """Classify one photo; ``keep`` (the results library) is handed each successful answer and may return a note."""
    encoded = qimage_to_png_bytes(source) if isinstance(source, QImage) else None
    data = encoded if encoded is not None else source
    pred = clf.classify(cast("Source", data), keep_image=True, layer=layer, method=method)
    name = pred.path
    if not pred.ok or pred.image is None or pred.image_size is None or pred.crop is None or pred.cams is None:
        return PhotoResult(item_id, False, name, error=pred.error or "the photo could not be read",
                           record=pred.to_record(), encoded=encoded)
    kept_note = keep(source, pred) if keep is not None else None
    display = _display_copy(pred.image)
    width, height = pred.image_size
    left, top, right, bottom = pred.crop
    side = round(THUMB_SIDE * pixel_ratio)
    thumb = display.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    thumb.setDevicePixelRatio(pixel_ratio)
    return PhotoResult(
        item_id, True, name, top=list(pred.top), maps=_map_indices(pred.cams), cams=np.asarray(pred.cams, np.float32),
        crop=(left / width, top / height, right / width, bottom / height),
        display=display, thumb=thumb, ms=pred.ms, device=pred.device, layer=pred.layer,
        method=pred.method, note="; ".join(n for n in (pred.note, kept_note) if n) or None, record=pred.to_record(),
        encoded=encoded, size=(width, height),
    )


def _name_of(source: PhotoSource) -> str:
    if isinstance(source, QImage):
        return "image data"
    from .core.preprocess import source_name

    return source_name(source)


class JobQueue:
    """Three lanes shared by the GUI thread and the worker. Interactive jobs are always taken first; then batch
    photos and background steps take turns, one each, while both wait (the batch keeps moving while the photo
    shown is scored, and the score does not wait for the whole batch).

    Batch photos wait while there is no model. ``put`` says whether the worker needs waking; the worker
    keeps itself awake while jobs remain, so at most one wake-up is ever on its way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[Lane, deque[Job]] = {"interactive": deque(), "batch": deque(), "background": deque()}
        self._batch = self._lanes["batch"]
        self._background_next = True  # whose turn it is when a batch photo and a background step both wait
        self._awake = False

    def put(self, job: Job, first: bool = False) -> bool:
        """Queue ``job`` in its lane (``first``: ahead of the others in it); True when the worker needs waking."""
        with self._lock:
            lane = self._lanes[job.lane]
            lane.appendleft(job) if first else lane.append(job)
            wake, self._awake = not self._awake, True
            return wake

    def take(self, batch_allowed: bool) -> Job | None:
        with self._lock:
            interactive, background = self._lanes["interactive"], self._lanes["background"]
            if interactive:
                return interactive.popleft()
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
                        or (batch_allowed and bool(self._batch)))
            wake = has_work and not self._awake
            self._awake = self._awake or wake
            return wake

    def drop_batch(self) -> list[Job]:
        """Remove the batch photos not yet started; returns their jobs."""
        with self._lock:
            dropped = list(self._batch)
            self._batch.clear()
            return dropped

    def pending_batch(self) -> int:
        with self._lock:
            return len(self._batch)


class _Runner(QObject):
    """Lives in the worker thread: takes a job, lets it run with this context, and sends its one answer."""

    def __init__(self, out: Worker, queue: JobQueue, factory: ClassifierFactory, weights: str | None, device: str,
                 pixel_ratio: float, threads: int | None, backend: str, precision: str,
                 library: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        from .library_worker import LibraryKeeper

        self.library = LibraryKeeper(library, pixel_ratio)  # the results library; opened after the model loads
        self.out, self.queue, self.factory = out, queue, factory
        self.weights, self.device = weights, device
        self.backend, self.precision = backend, precision
        self.pixel_ratio, self.threads = pixel_ratio, threads
        self.classifier: ClassifierLike | None = None
        self.cuda_available = False
        self.download_cancelled = threading.Event()
        self.train_cancelled = threading.Event()
        self.running: Job | None = None  # the job being computed (read from the GUI thread by Worker.stop)

    @Slot()
    def start(self) -> None:
        self.cuda_available = runtime_facts(self.threads)
        self._answer(LoadJob(self.weights, self.device, explicit=False))
        self.library.open()
        self._kick()

    @Slot()
    def shutdown(self) -> None:
        """In the worker thread, as it ends: the gallery kept last is written and the library closed."""
        self.library.close()

    @Slot()
    def tick(self) -> None:
        """One job, then let the event loop breathe (a stop request is seen between two photos)."""
        job = self.queue.take(batch_allowed=self.classifier is not None)
        if job is None:
            return
        self._answer(job)
        self.out._wake.emit()  # queued: the next job comes after pending events

    def cancel_running(self) -> None:
        """The window closes: a Score-CAM or faithfulness job being computed stops at its next batch."""
        job = self.running
        if isinstance(job, (ScoreCamJob, FaithfulnessJob)):
            job.cancel.set()

    def _answer(self, job: Job) -> None:
        self.running = job
        try:
            result = job.run(self)
        except JobFailed as exc:
            self.out.failed.emit(job, str(exc))
        except Exception as exc:  # a bug or an unexpected fault must not kill the worker, nor be lost
            self.out.failed.emit(job, f"internal error: {exc!r}")
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

    def progress_of(self, job: Job) -> Callable[[int, int], None]:
        """A (done, total) callback for a long job, throttled, reported as ``progress(job, done, total)``."""
        return throttled(lambda done, total: self.out.progress.emit(job, done, total))

    def then(self, job: Job) -> None:
        """Run ``job`` next, before whatever else waits."""
        self.queue.put(job, first=True)

    def load(self, job: LoadJob) -> ModelInfo | ModelMissing:
        from .core.devices import resolve
        from .core.errors import DeviceError, NoWeightsError, ResnextGuiError

        self.out.loading.emit("Loading model…")
        device, note = job.device, None
        try:
            resolve(device)
        except DeviceError as exc:  # e.g. CUDA remembered from another session, no GPU here now
            device, note = "cpu", f"{exc} Using the CPU."
        backend, precision = job.backend or self.backend, job.precision or self.precision
        try:
            clf = self.factory(job.weights, device, backend=backend, precision=precision,
                               progress=self.out.loading.emit)  # a first conversion shows its steps in the status bar
            info = self._info(clf, "; ".join(n for n in (note, clf.note) if n) or None)
        except NoWeightsError as exc:
            return ModelMissing(str(exc))
        except Exception as exc:  # our own errors, and whatever a device driver raises
            message = str(exc) if isinstance(exc, ResnextGuiError) else f"could not load the model: {exc!r}"
            if self.classifier is None and not job.explicit:
                return ModelMissing(message)
            raise JobFailed(message) from exc
        self.classifier, self.weights, self.device = clf, job.weights, job.device
        self.backend, self.precision = backend, precision
        runtime_facts(self.threads)  # a PyTorch runtime just loaded: its threads are set in this thread
        # torch, the model and Qt are hundreds of thousands of objects that live as long as the app: out of the
        # collector's full passes, which would otherwise hold the interpreter (and freeze the window) for long.
        gc.freeze()
        self._kick()
        return info

    def _info(self, clf: ClassifierLike, note: str | None) -> ModelInfo:
        from .core.devices import describe, native_bf16, versions

        source = clf.source
        runtime = ("OpenVINO" if clf.backend == "openvino" else "PyTorch") + (" bf16" if clf.precision == "bf16" else "")
        return ModelInfo(
            device=f"{describe(clf.device)} · {runtime}",
            backend=clf.backend, precision=clf.precision, bf16_native=clf.device.type == "cpu" and native_bf16(),
            device_type=clf.device.type,
            weights=source.describe(),
            weights_short=source.variant.describe() if source.variant else source.path.name,
            num_classes=len(clf.labels),
            cuda_available=self.cuda_available,
            load_ms=clf.load_ms,
            versions=versions(),
            note=note,
        )


class Worker(QObject):
    """The window's only way to the model: jobs in, one answer per job out (delivered on the GUI thread).

    One QThread runs one job at a time. What the user asks for (a view, a recompute, a save, weights, device,
    download) goes before the next batch photo; the photo being computed always finishes first. The score of
    the photo shown is computed a pass at a time, taking turns with the batch photos (JobQueue).
    """

    loading = Signal(str)  # what the model load is doing, for the status bar
    progress = Signal(object, int, int)  # job, done, total (a download's bytes, a training's photos)
    finished = Signal(object, object)  # job, its result (see each job's run)
    failed = Signal(object, str)  # job, what went wrong
    _wake = Signal()

    live: set[Worker] = set()  # every running worker, so tests can prove none is left behind

    def __init__(self, weights: str | None = None, device: str = "auto", parent: QObject | None = None,
                 pixel_ratio: float = 1.0, threads: int | None = None,
                 classifier_factory: ClassifierFactory | None = None, backend: str = "auto",
                 precision: str = "fp32", library: str | os.PathLike[str] | None = None) -> None:
        super().__init__(parent)
        self._queue = JobQueue()
        self._thread = QThread()
        self._thread.setObjectName("resnext-gui inference")
        self._runner = _Runner(self, self._queue, classifier_factory or _default_factory, weights, device,
                               pixel_ratio, threads, backend, precision, library)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.start)
        # emitted from the worker thread itself as it ends: the library's connection is closed where it was made
        self._thread.finished.connect(self._runner.shutdown, Qt.ConnectionType.DirectConnection)
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
        self._runner.cancel_running()
        self._thread.quit()
        finished = self._thread.wait(timeout_ms)
        if finished:
            Worker.live.discard(self)
        return finished

    # ---- requests: each returns its job, which its answer names ----
    def submit(self, job: Job) -> Job:
        if self._queue.put(job):
            self._wake.emit()
        return job

    def classify(self, item_id: int, source: PhotoSource, layer: str = "layer4", method: str = "gradcam") -> Job:
        return self.submit(ClassifyJob(item_id, _own(source), layer, method))

    def recompute(self, item_id: int, source: PhotoSource, layer: str, method: str = "gradcam") -> Job:
        return self.submit(RecomputeJob(item_id, _own(source), layer, method))

    def score_cam(self, item_id: int, source: PhotoSource, layer: str, classes: Sequence[int]) -> ScoreCamJob:
        """Score-CAM of the photo shown (progress, then its maps); ``cancel(job)`` stops it."""
        job = ScoreCamJob(item_id, _own(source), layer, tuple(classes))
        self.submit(job)
        return job

    def faithfulness(self, item_id: int, source: PhotoSource, class_index: int, cam: np.ndarray,
                     method: str = "gradcam", layer: str = "layer4") -> FaithfulnessJob:
        """The faithfulness figures of the map shown; ``cancel(job)`` when it no longer is."""
        job = FaithfulnessJob(item_id, _own(source), class_index, np.array(cam, dtype=np.float32), method, layer)
        self.submit(job)
        return job

    def cancel(self, job: ScoreCamJob | FaithfulnessJob) -> None:
        """Stop ``job`` between two of its batches (or before it starts); it answers ``failed(job, CANCELLED)``."""
        job.cancel.set()

    def view(self, item_id: int, source: PhotoSource, full: bool = False) -> Job:
        return self.submit(ViewJob(item_id, _own(source), full))

    def load(self, weights: str | None, device: str, explicit: bool = True, backend: str | None = None,
             precision: str | None = None) -> Job:
        """Switch weights, device, CPU runtime or precision; takes effect for every photo still waiting."""
        self.weights = weights
        return self.submit(LoadJob(weights, device, explicit, backend, precision))

    def download(self, variant: str = "v2", url: str | None = None) -> Job:
        return self.submit(DownloadJob(variant, url))

    def cancel_download(self) -> None:
        self._runner.download_cancelled.set()

    def train(self, data: str | list[str], val_fraction: float = 0.2, seed: int = 0) -> Job:
        """Teach new classes with the current backbone (off the GUI thread): progress, then its answer."""
        return self.submit(TrainJob(data, val_fraction, seed))

    def count_classes(self, data: str | list[str]) -> Job:
        """List the class folders' photos (off the GUI thread): answers core.train.scan's DataSet."""
        return self.submit(CountJob(data))

    def cancel_training(self) -> None:
        self._runner.train_cancelled.set()

    def save_model(self, source: str, target: str) -> Job:
        return self.submit(SaveModelJob(source, target))

    def keep_gallery(self, paths: list[str]) -> None:
        """The gallery to show at the next start (files, in order); written now and again as the worker stops."""
        self._runner.library.keep_gallery(paths)
        self.submit(_save_gallery_job())

    def save_image(self, path: str, image: QImage, text: dict[str, str]) -> Job:
        """Write ``image`` as a PNG file (Save Overlay) on the worker's thread: answers the path, or why not."""
        # Not copied: the image is the window's fresh composition, never drawn on again, and QImage's sharing is
        # thread-safe (a full-size copy would double the memory of a big photo's save).
        return self.submit(SaveImageJob(path, image, dict(text)))

    def cancel_batch(self) -> list[int]:
        """Drop the batch photos not yet started (the one being computed finishes); returns their ids."""
        return [job.item_id for job in self._queue.drop_batch() if isinstance(job, ClassifyJob)]

    def pending(self) -> int:
        return self._queue.pending_batch()


def _save_gallery_job() -> Job:
    from .library_worker import SaveGalleryJob

    return SaveGalleryJob()


def _own(source: PhotoSource) -> PhotoSource:
    return source.copy() if isinstance(source, QImage) else source  # a QImage crossing threads gets its own pixels
