"""The Qt bridge: one long-lived QThread owns the engine; jobs go in as queued calls, plain results come out as signals."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QBuffer, QIODevice, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

DISPLAY_MAX_SIDE = 1280  # the photo kept for the view; the full decode never leaves the worker
THUMB_SIDE = 96  # logical pixels; drawn at the screen's pixel ratio
MAP_SIDE = 224  # heatmaps are sent upsampled to the model's input size, as 8-bit colour-map indices


# ---- jobs (GUI -> worker) ----
@dataclass
class ClassifyJob:
    item_id: int
    source: object  # path (str) or encoded image bytes
    layer: str = "layer4"
    generation: int = 0


@dataclass
class DisplayJob:
    """Decode a photo again for the view (its earlier display copy was dropped to bound memory)."""

    item_id: int
    source: object


@dataclass
class LoadJob:
    weights: str | None = None  # None: the lookup order
    device: str = "auto"
    explicit: bool = False  # True when the user picked this file: a failure keeps the previous model


@dataclass
class DownloadJob:
    variant: str = "v2"
    url: str | None = None


@dataclass
class QImageJob:
    """Image data that came without a file (dragged from a browser, pasted): encoded in the worker."""

    item_id: int
    image: QImage
    layer: str = "layer4"
    generation: int = 0


# ---- results (worker -> GUI) ----
@dataclass
class ItemResult:
    item_id: int
    ok: bool
    name: str
    error: str | None = None
    top: list = field(default_factory=list)  # [(rank, index, label, prob)]
    maps: np.ndarray | None = None  # (k, MAP_SIDE, MAP_SIDE) uint8
    crop: tuple | None = None  # (left, top, right, bottom) in display-image pixels
    display: QImage | None = None
    thumb: QImage | None = None
    ms: float = 0.0
    device: str = ""
    layer: str = "layer4"
    note: str | None = None
    record: dict = field(default_factory=dict)  # the `classify` command's fields, for export
    source: object = None  # set for pasted images: the bytes the worker encoded


def _qimage_from_rgb(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # own the pixels


def _display_copy(pil_image) -> QImage:
    from PIL import Image

    im = pil_image
    if max(im.size) > DISPLAY_MAX_SIDE:
        im = im.copy()
        im.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE), Image.Resampling.BILINEAR)
    return _qimage_from_rgb(np.asarray(im))


def _map_indices(cams: np.ndarray) -> np.ndarray:
    """Maps in [0, 1] -> (k, MAP_SIDE, MAP_SIDE) colour-map indices, upsampled as the CLI's overlays are."""
    from .core.cam import upsample

    return np.stack([np.clip(np.rint(upsample(m, (MAP_SIDE, MAP_SIDE)) * 255), 0, 255).astype(np.uint8) for m in cams])


def qimage_to_png_bytes(image: QImage) -> bytes:
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(buf.data())


class Engine(QObject):
    """Lives in the worker thread. Imports torch there, so the window is up before torch loads."""

    modelReady = Signal(dict)
    modelMissing = Signal(str)
    modelFailed = Signal(str)
    loading = Signal(str)
    result = Signal(object)
    display = Signal(int, object)
    downloadProgress = Signal(int, int)
    downloadDone = Signal(bool, str)

    def __init__(self, cancel_state: "CancelState", weights: str | None, device: str, threads: int | None = None,
                 pixel_ratio: float = 1.0) -> None:
        super().__init__()
        self.threads = threads
        self.pixel_ratio = pixel_ratio
        self.cancel = cancel_state
        self.weights = weights
        self.device = device
        self.clf = None
        self.waiting: list = []  # jobs that arrived before any usable weights

    @Slot()
    def start(self) -> None:
        import torch

        # Thread settings are per thread: set them here, in the thread that runs the model.
        torch.set_num_threads(self.threads or torch.get_num_threads())
        self._load(LoadJob(self.weights, self.device, explicit=False))

    @Slot(object)
    def submit(self, job) -> None:
        try:
            if isinstance(job, (ClassifyJob, QImageJob)):
                if job.generation != self.cancel.generation:
                    return  # stopped or cleared after it was queued
                if self.clf is None:
                    self.waiting.append(job)
                    return
                self._classify(job)
            elif isinstance(job, DisplayJob):
                self._display(job)
            elif isinstance(job, LoadJob):
                self._load(job)
            elif isinstance(job, DownloadJob):
                self._download(job)
        except Exception as exc:  # a bug must not kill the worker: report it on the item
            item_id = getattr(job, "item_id", -1)
            self.result.emit(ItemResult(item_id, False, str(getattr(job, "source", "")), error=f"internal error: {exc!r}"))

    # ---- jobs ----
    def _load(self, job: LoadJob) -> None:
        from .core.classifier import Classifier
        from .core.errors import NoWeightsError, ResnextGuiError

        self.loading.emit("Loading model…")
        try:
            clf = Classifier(job.weights, device=job.device)
        except NoWeightsError as exc:
            self.modelMissing.emit(str(exc))
            return
        except Exception as exc:  # our own errors, and whatever a device driver raises
            message = str(exc) if isinstance(exc, ResnextGuiError) else f"could not load the model: {exc!r}"
            if self.clf is None and not job.explicit:
                self.modelMissing.emit(message)
            else:
                self.modelFailed.emit(message)
            return
        self.clf, self.weights, self.device = clf, job.weights, job.device
        self.modelReady.emit(self._info())
        waiting, self.waiting = self.waiting, []
        for queued in waiting:
            self.submit(queued)

    def _info(self) -> dict:
        import torch
        import torchvision

        from .core.model import describe_device

        clf = self.clf
        return {
            "device": describe_device(clf.device),
            "device_type": clf.device.type,
            "weights": clf.source.describe(),
            "weights_short": clf.source.variant.describe() if clf.source.variant else clf.source.path.name,
            "num_classes": len(clf.labels),
            "cuda_available": torch.cuda.is_available(),
            "load_ms": clf.load_ms,
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        }

    def _classify(self, job) -> None:
        from .core.preprocess import source_name

        source = qimage_to_png_bytes(job.image) if isinstance(job, QImageJob) else job.source
        name = source_name(source)
        pred = self.clf.classify(source, keep_image=True, layer=job.layer)
        if not pred.ok:
            self.result.emit(ItemResult(job.item_id, False, name, error=pred.error, record=pred.to_record(),
                                        source=source if isinstance(job, QImageJob) else None))
            return
        display = _display_copy(pred.image)
        sx = display.width() / pred.image_size[0]
        sy = display.height() / pred.image_size[1]
        left, top, right, bottom = pred.crop
        side = round(THUMB_SIDE * self.pixel_ratio)
        thumb = display.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        thumb.setDevicePixelRatio(self.pixel_ratio)
        self.result.emit(
            ItemResult(
                job.item_id, True, name,
                top=[(t.rank, t.index, t.label, t.prob) for t in pred.top],
                maps=_map_indices(pred.cams),
                crop=(left * sx, top * sy, right * sx, bottom * sy),
                display=display, thumb=thumb, ms=pred.ms, device=pred.device, layer=pred.layer,
                note=pred.note, record=pred.to_record(),
                source=source if isinstance(job, QImageJob) else None,
            )
        )

    def _display(self, job: DisplayJob) -> None:
        from .core.errors import ImageError
        from .core.preprocess import load_image

        try:
            decoded = load_image(job.source, min_side=DISPLAY_MAX_SIDE)
        except ImageError:
            return
        self.display.emit(job.item_id, _display_copy(decoded.image))

    def _download(self, job: DownloadJob) -> None:
        from .core import weights as W
        from .core.errors import ResnextGuiError

        self.cancel.download.clear()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.05 or done == total:
                last[0] = now
                self.downloadProgress.emit(done, total)

        try:
            path = W.fetch(W.VARIANTS[job.variant], url=job.url, progress=progress, cancelled=self.cancel.download.is_set)
        except W.DownloadCancelled:
            self.downloadDone.emit(False, "Download cancelled; nothing was saved.")
            return
        except ResnextGuiError as exc:
            self.downloadDone.emit(False, str(exc))
            return
        self.downloadDone.emit(True, str(path))
        self._load(LoadJob(None, self.device))


class CancelState:
    """Shared between threads: the current job generation (bumped to drop queued work) and a download flag."""

    def __init__(self) -> None:
        self.generation = 0
        self.download = threading.Event()


class WorkerBridge(QObject):
    """GUI-side owner of the worker thread: submit jobs, cancel pending ones, stop cleanly."""

    _submit = Signal(object)
    live: set["WorkerBridge"] = set()  # every running bridge, so tests can prove none is left behind

    def __init__(self, weights: str | None = None, device: str = "auto", parent: QObject | None = None,
                 pixel_ratio: float = 1.0) -> None:
        super().__init__(parent)
        self.cancel_state = CancelState()
        self.thread = QThread()
        self.thread.setObjectName("resnext-gui inference")
        self.engine = Engine(self.cancel_state, weights, device, pixel_ratio=pixel_ratio)
        self.engine.moveToThread(self.thread)
        self.thread.started.connect(self.engine.start)
        self._submit.connect(self.engine.submit)
        self.thread.finished.connect(self.engine.deleteLater)
        self._ids = itertools.count(1)

    def start(self) -> None:
        WorkerBridge.live.add(self)
        self.thread.start()

    def new_id(self) -> int:
        return next(self._ids)

    @property
    def generation(self) -> int:
        return self.cancel_state.generation

    def submit(self, job) -> None:
        self._submit.emit(job)

    def cancel_pending(self) -> None:
        """Queued photos are dropped; the one being computed finishes (a fraction of a second)."""
        self.cancel_state.generation += 1

    def cancel_download(self) -> None:
        self.cancel_state.download.set()

    def stop(self, timeout_ms: int = 20000) -> bool:
        """Drop queued work and end the thread. Mid-batch this takes one photo's time; while torch is
        still being imported it can take a few seconds (an import can't be interrupted)."""
        self.cancel_pending()
        self.cancel_download()
        self.thread.quit()
        finished = self.thread.wait(timeout_ms)
        if finished:
            WorkerBridge.live.discard(self)
        return finished
