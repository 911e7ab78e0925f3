"""Jobs on photos: classify one of a batch, recompute the one shown with another map, Score-CAM, faithfulness, a view, Save Overlay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np
from PySide6.QtGui import QImage

from ...core.kinds import DEFAULT_LAYER, DEFAULT_METHOD, Layer, Method
from ..images import PhotoSource, decodable, display_copy, map_indices, name_of, own, qimage_from_rgb, thumbnail, write_png
from ..queue import AGAIN, CANCELLED, Again, Cancellable, Job, JobFailed, Lane
from ..results import PhotoResult, ScoreCamMaps

if TYPE_CHECKING:
    from ...core.faithfulness import Faithfulness
    from ...core.prediction import Prediction
    from ...core.preprocess import Prepared
    from ..runner import ClassifierLike, Context

_R = TypeVar("_R")


@dataclass(eq=False)
class ClassifyJob(Job[PhotoResult]):
    """A photo of a batch: classified in turn, after anything the user asked for. A file that can't be read is an
    answer (a PhotoResult that is not ok), not a failure. An unchanged file is answered from the results library."""

    lane: ClassVar[Lane] = "batch"
    item_id: int
    source: PhotoSource
    layer: Layer = DEFAULT_LAYER
    method: Method = DEFAULT_METHOD  # a one-pass method (Score-CAM is a ScoreCamJob, for the photo shown only)

    def __post_init__(self) -> None:
        self.source = own(self.source)

    @property
    def name(self) -> str:
        return name_of(self.source)

    def run(self, ctx: Context) -> PhotoResult:
        clf = ctx.require_classifier()
        known = ctx.library.answer(clf, self.item_id, self.source, self.layer, self.method)
        if known is not None:
            return known
        return photo_result(clf, self.item_id, self.source, self.layer, self.method, ctx.pixel_ratio,
                            keep=lambda source, pred: ctx.library.keep(clf, source, pred))


@dataclass(eq=False)
class RecomputeJob(Job[PhotoResult]):
    """The selected photo again, with another CAM layer or one-pass method, or with the model now in use (its
    answer was another model's): from the results library when it holds this model's answer."""

    item_id: int
    source: PhotoSource
    layer: Layer
    method: Method = DEFAULT_METHOD

    def __post_init__(self) -> None:
        self.source = own(self.source)

    def run(self, ctx: Context) -> PhotoResult:
        clf = ctx.require_classifier()
        known = ctx.library.answer(clf, self.item_id, self.source, self.layer, self.method)
        if known is not None:
            return known
        res = photo_result(clf, self.item_id, self.source, self.layer, self.method, ctx.pixel_ratio,
                           keep=lambda source, pred: ctx.library.keep(clf, source, pred))
        if not res.ok:
            raise JobFailed(res.error or "the photo could not be read again")
        return res


@dataclass(eq=False)
class ScoreCamJob(Job[ScoreCamMaps], Cancellable):
    """Score-CAM of the photo shown: a forward pass per activation map, batched, with progress; ``cancel``
    stops it between two batches (it then fails with CANCELLED). Never asked for a whole batch of photos."""

    item_id: int
    source: PhotoSource
    layer: Layer
    classes: tuple[int, ...]  # the photo's top classes, best first
    cancel: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.source = own(self.source)

    def run(self, ctx: Context) -> ScoreCamMaps:
        clf = ctx.require_classifier()
        item = prepared(clf, self.source, self.cancel)
        cams = cancellable(lambda: clf.score_cams(item, list(self.classes), self.layer,
                                                 progress=ctx.progress_of(self), cancelled=self.cancel.is_set))
        cams = np.asarray(cams, dtype=np.float32)
        return ScoreCamMaps(self.item_id, self.layer, self.classes, map_indices(cams), cams)


@dataclass(eq=False)
class FaithfulnessJob(Job["Faithfulness"], Cancellable):
    """How faithful one map is to the model (deletion / insertion, against a random map) for the photo and class
    shown: four batched passes, one per turn, so a save, a view or the next batch photo never waits for all four.
    Answers a core Faithfulness; ``cancel``: superseded, fails with CANCELLED before its next pass, as it does when
    another model was loaded in between."""

    lane: ClassVar[Lane] = "background"
    item_id: int
    source: PhotoSource
    class_index: int
    cam: np.ndarray  # (h, w) float32 in [0, 1]: the map shown, at the layer's own size
    method: Method = DEFAULT_METHOD
    layer: Layer = DEFAULT_LAYER
    cancel: threading.Event = field(default_factory=threading.Event)
    _passes: Generator[int, None, Faithfulness] | None = field(default=None, init=False, repr=False)
    _model: ClassifierLike | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.source = own(self.source)
        self.cam = np.array(self.cam, dtype=np.float32)

    def run(self, ctx: Context) -> Faithfulness | Again:
        clf = ctx.require_classifier()
        if self._passes is None:
            item = prepared(clf, self.source, self.cancel)
            self._model = clf
            self._passes = cancellable(lambda: clf.faithfulness_passes(item, self.class_index, self.cam))
        passes = self._passes
        if self.cancel.is_set() or clf is not self._model:
            passes.close()
            raise JobFailed(CANCELLED if self.cancel.is_set() else "another model was loaded meanwhile")
        try:
            cancellable(lambda: next(passes))
        except StopIteration as end:
            figures: Faithfulness = end.value
            return figures
        return AGAIN


@dataclass(eq=False)
class ViewJob(Job[QImage]):
    """Decode a photo again for the view (its display copy was dropped to bound memory); answers a QImage.
    ``full``: every pixel of the photo (the view zoomed past its display copy, or Save Overlay)."""

    item_id: int
    source: PhotoSource
    full: bool = False

    def __post_init__(self) -> None:
        self.source = own(self.source)

    def run(self, ctx: Context) -> QImage:
        from ...core.errors import ImageError
        from ...core.preprocess import load_image
        from ..images import DISPLAY_MAX_SIDE

        try:
            decoded = load_image(decodable(self.source), min_side=None if self.full else DISPLAY_MAX_SIDE)
        except ImageError as exc:
            raise JobFailed(str(exc)) from exc
        return qimage_from_rgb(np.asarray(decoded.image)) if self.full else display_copy(decoded.image)


@dataclass(eq=False)
class SaveImageJob(Job[str]):
    """Save Overlay's file: the image encoded as PNG (``text`` as its text chunks) and written whole or not at
    all, off the GUI thread; answers the path written."""

    path: str
    # Not copied: the image is the window's fresh composition, never drawn on again, and QImage's sharing is
    # thread-safe (a full-size copy would double the memory of a big photo's save).
    image: QImage
    text: dict[str, str] = field(default_factory=dict)

    def run(self, ctx: Context | None) -> str:
        write_png(self.image, self.path, self.text)
        return self.path


def prepared(clf: ClassifierLike, source: PhotoSource, cancel: threading.Event) -> Prepared:
    """The photo decoded again for a job on the photo shown (a job cancelled while it waited does nothing)."""
    from ...core.errors import ResnextGuiError

    if cancel.is_set():
        raise JobFailed(CANCELLED)
    try:
        return clf.prepare(decodable(source))
    except ResnextGuiError as exc:
        raise JobFailed(str(exc)) from exc
    except Exception as exc:  # the file went away or changed since it was classified
        raise JobFailed(f"the photo could not be read again ({type(exc).__name__})") from exc


def cancellable(compute: Callable[[], _R]) -> _R:
    """``compute()``, with the core's Cancelled and its own errors as this job's failure."""
    from ...core.errors import Cancelled, ResnextGuiError

    try:
        return compute()
    except Cancelled as exc:
        raise JobFailed(CANCELLED) from exc
    except ResnextGuiError as exc:
        raise JobFailed(str(exc)) from exc


def photo_result(clf: ClassifierLike, item_id: int, source: PhotoSource, layer: Layer, method: Method,
                 pixel_ratio: float, keep: Callable[[PhotoSource, Prediction], str | None] | None = None) -> PhotoResult:
    """Classify one photo; ``keep`` (the results library) is handed each successful answer and may return a note."""
    from ...core.answers import key_of

    data = decodable(source)
    encoded = data if isinstance(source, QImage) and isinstance(data, bytes) else None  # image data, as PNG
    pred = clf.classify(data, keep_image=True, layer=layer, method=method)
    name = pred.path
    if not pred.ok or pred.image is None or pred.image_size is None or pred.crop is None or pred.cams is None:
        return PhotoResult(item_id, False, name, error=pred.error or "the photo could not be read",
                           record=pred.to_record(), encoded=encoded)
    kept_note = keep(source, pred) if keep is not None else None
    display = display_copy(pred.image)
    width, height = pred.image_size
    left, top, right, bottom = pred.crop
    return PhotoResult(
        item_id, True, name, top=list(pred.top), maps=map_indices(pred.cams), cams=np.asarray(pred.cams, np.float32),
        crop=(left / width, top / height, right / width, bottom / height),
        display=display, thumb=thumbnail(display, pixel_ratio), ms=pred.ms, device=pred.device, layer=pred.layer,
        method=pred.method, note="; ".join(n for n in (pred.note, kept_note) if n) or None, record=pred.to_record(),
        encoded=encoded, size=(width, height), model=key_of(clf),
    )
