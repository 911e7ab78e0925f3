"""The results library on the worker thread: answers from it, what is stored in it, and the window's library jobs.

The worker owns one core Library (its sqlite connection belongs to the worker thread: it is opened there,
after the model has loaded, and closed there when the thread ends). A photo is answered from it when the
file is unchanged and the model is the same; every new answer of the layer4 maps is stored.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from .worker import THUMB_SIDE, ClassifierLike, Job, JobFailed, PhotoResult, PhotoSource, _map_indices, _name_of

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from .core.library import Library, LibraryEntry
    from .core.prediction import Prediction
    from .worker import _Runner

LIBRARY_LAYER = "layer4"  # the maps the library keeps (another layer is computed, not stored)
SEARCH_LIMIT = 500


def default_path() -> Path:
    from .core.library import default_library_path

    return default_library_path()


# ---- answers (worker -> GUI) ----
@dataclass
class LibraryInfo:
    """What the library holds now; ``available`` is False when there is none (not kept, or it could not open)."""

    path: str = ""
    count: int = 0
    size_bytes: int = 0
    available: bool = False
    changed: int = 0  # entries a Forget or Clear removed
    note: str | None = None  # something the library has to say (set aside, kept in memory only): said once


@dataclass
class Restored:
    """Last time's gallery: the files still there, in order, and those that are gone."""

    paths: list[str]
    missing: list[str]
    info: LibraryInfo  # its note: a damaged library set aside, or one that could not be opened


@dataclass
class LibraryMatch:
    """One photo the library search found."""

    path: str
    label: str
    prob: float
    classified_at: float
    exists: bool
    thumb: QImage | None = None


@dataclass
class KeywordPhoto:
    item_id: int
    path: str | None  # None: image data without a file
    name: str
    top: list[dict[str, Any]]  # [{"rank", "index", "label", "prob"}]


@dataclass
class KeywordsOutcome:
    written: list[tuple[int, str]] = field(default_factory=list)  # (photo, the sidecar written)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (photo, its name, why)


# ---- the library as the worker thread holds it ----
class LibraryKeeper:
    """The worker's Library, opened and used on the worker thread only; ``keep_gallery`` may be called from any."""

    def __init__(self, path: str | os.PathLike[str] | None, pixel_ratio: float) -> None:
        self.path = Path(path) if path else None
        self.pixel_ratio = pixel_ratio
        self.lib: Library | None = None
        self.note: str | None = None
        self._opened = False
        self._key: tuple[object, str | None] | None = None  # (classifier, its model key)
        self._store_failed = False
        self._lock = threading.Lock()
        self._gallery: list[str] | None = None  # the window's gallery, to be written

    def open(self) -> None:
        if self._opened or self.path is None:
            return
        self._opened = True
        try:
            from .core.library import Library

            self.lib = Library(self.path)
        except Exception as exc:  # a folder that can't be written, a disk fault: the app works on, without it
            self.lib = None
            self.note = (f"The results library {self.path} could not be opened ({exc}). "
                         "Results are not kept this time.")

    def take_note(self) -> str | None:
        """What the library has to tell the user, once (it may find a problem at any read, not only at opening)."""
        note, self.note = self.note, None
        if self.lib is not None:
            note, self.lib.note = note or self.lib.note, None
        return note

    def info(self, changed: int = 0) -> LibraryInfo:
        if self.lib is None:
            return LibraryInfo(str(self.path or ""), note=self.take_note())
        count, size = self.lib.count(), self.lib.size_bytes()
        return LibraryInfo(str(self.path), count, size, True, changed, self.take_note())

    def model_key(self, clf: ClassifierLike) -> str | None:
        """The library's name for the model answering (its checkpoint and preprocessing); None: not known."""
        if self._key is not None and self._key[0] is clf:
            return self._key[1]
        from .core.library import model_key

        sha = getattr(getattr(clf, "checkpoint", None), "sha256", None)
        prep = getattr(clf, "preprocessing", None)
        key = model_key(sha, prep) if isinstance(sha, str) and prep is not None else None
        self._key = (clf, key)
        return key

    # ---- photos ----
    def answer(self, clf: ClassifierLike, item_id: int, source: PhotoSource, layer: str,
               method: str = "gradcam") -> PhotoResult | None:
        """The library's answer for an unchanged photo and the same model; None: it is to be computed.
        The library keeps the last stage's Grad-CAM maps: another layer or method is computed."""
        if self.lib is None or layer != LIBRARY_LAYER or method != "gradcam" or not isinstance(source, str):
            return None
        key = self.model_key(clf)
        if key is None:
            return None
        try:
            entry = self.lib.lookup(source, key, min_top=int(getattr(clf, "topk", 1)))  # as many classes as asked
        except Exception:  # a library fault costs a forward pass, never the answer
            return None
        return None if entry is None else self._result(item_id, source, entry)

    def _result(self, item_id: int, source: str, entry: LibraryEntry) -> PhotoResult | None:
        from .core.prediction import TopClass

        if not entry.top or entry.maps is None or entry.crop is None or not entry.image_size:
            return None
        top = [TopClass(int(t["rank"]), int(t["index"]), str(t["label"]), float(t["prob"])) for t in entry.top]
        width, height = entry.image_size
        left, top_, right, bottom = entry.crop
        name = _name_of(source)
        record = {**entry.record, "path": name, "cached": True}
        return PhotoResult(
            item_id, True, name, top=top, maps=_map_indices(entry.maps),
            crop=(left / width, top_ / height, right / width, bottom / height),
            thumb=self.thumb(entry.thumbnail), device=str(entry.record.get("device", "")), layer=LIBRARY_LAYER,
            record=record, size=(width, height), cached=True,
        )

    def thumb(self, data: bytes | None) -> QImage | None:
        if not data:
            return None
        image = QImage.fromData(data)
        if image.isNull():
            return None
        side = round(THUMB_SIDE * self.pixel_ratio)
        image = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        image.setDevicePixelRatio(self.pixel_ratio)
        return image

    def keeper(self, clf: ClassifierLike) -> Callable[[PhotoSource, Prediction], str | None] | None:
        """What stores a new answer (None: nothing is kept); it returns a note when storing failed."""
        if self.lib is None:
            return None
        key = self.model_key(clf)
        if key is None:
            return None

        def keep(source: PhotoSource, pred: Prediction) -> str | None:
            if self.lib is None or not isinstance(source, str) or pred.layer != LIBRARY_LAYER:
                return None
            try:
                from .core.library import thumbnail_bytes

                self.lib.store(source, key, pred, thumbnail_bytes(cast("PILImage", pred.image)))
            except Exception as exc:  # a full disk: the answer is shown all the same; said once
                if not self._store_failed:
                    self._store_failed = True
                    return f"Not kept in the results library: {exc}"
            return None

        return keep

    # ---- the window's gallery ----
    def keep_gallery(self, paths: list[str]) -> None:
        """Any thread: the gallery to write (the worker writes it next, and when it stops)."""
        with self._lock:
            self._gallery = list(paths)

    def flush(self) -> None:
        with self._lock:
            paths, self._gallery = self._gallery, None
        if paths is not None and self.lib is not None:
            try:
                self.lib.set_gallery(paths)
            except Exception:  # not remembered: the next start shows an older gallery, nothing worse
                pass

    def close(self) -> None:
        self.flush()
        if self.lib is not None:
            try:
                self.lib.close()
            finally:
                self.lib = None


# ---- jobs (GUI -> worker) ----
@dataclass
class RestoreJob(Job):
    """Last time's gallery, from the library (the photos are then classified as usual: from the library)."""

    def run(self, ctx: _Runner) -> Restored:
        keeper = ctx.library
        keeper.open()
        paths: list[str] = []
        if keeper.lib is not None:
            try:
                paths = keeper.lib.gallery()
            except Exception:
                paths = []
        here: list[str] = []
        gone: list[str] = []
        for p in paths:
            (here if os.path.isfile(p) else gone).append(p)
        return Restored(here, gone, keeper.info())


@dataclass
class SaveGalleryJob(Job):
    """Write the gallery the window last kept (``Worker.keep_gallery``)."""

    def run(self, ctx: _Runner) -> None:
        ctx.library.flush()


@dataclass
class LibraryInfoJob(Job):
    def run(self, ctx: _Runner) -> LibraryInfo:
        return ctx.library.info()


@dataclass
class LibrarySearchJob(Job):
    """Every photo ever classified whose label or file name contains ``text``."""

    text: str
    limit: int = SEARCH_LIMIT

    def run(self, ctx: _Runner) -> list[LibraryMatch]:
        lib = ctx.library.lib
        if lib is None:
            raise JobFailed("There is no results library to search (results are not being kept).")
        try:
            entries = lib.search(self.text, self.limit)
        except Exception as exc:
            raise JobFailed(f"The library could not be searched: {exc}") from exc
        out = []
        for e in entries:
            best: dict[str, Any] = e.top[0] if e.top else {"label": "", "prob": 0.0}
            out.append(LibraryMatch(e.path, str(best["label"]), float(best["prob"]), e.classified_at,
                                    os.path.isfile(e.path), ctx.library.thumb(e.thumbnail)))
        return out


@dataclass
class ForgetJob(Job):
    """Remove these photos' entries from the library (the files are never touched)."""

    paths: list[str]

    def run(self, ctx: _Runner) -> LibraryInfo:
        lib = ctx.library.lib
        if lib is None:
            return ctx.library.info()
        try:
            n = lib.forget(self.paths)
        except Exception as exc:
            raise JobFailed(f"The library could not forget them: {exc}") from exc
        return ctx.library.info(n)


@dataclass
class ClearLibraryJob(Job):
    """Remove every entry from the library."""

    def run(self, ctx: _Runner) -> LibraryInfo:
        lib = ctx.library.lib
        if lib is None:
            return ctx.library.info()
        before = lib.count()
        try:
            lib.clear()
        except Exception as exc:
            raise JobFailed(f"The library could not be cleared: {exc}") from exc
        return ctx.library.info(before)


@dataclass
class WriteKeywordsJob(Job):
    """Write each photo's top classes as XMP keywords beside it (the sidecar NAME.EXT.xmp, merged)."""

    photos: list[KeywordPhoto]
    min_prob: float | None = None  # None: core.xmp.DEFAULT_MIN_PROB

    def run(self, ctx: _Runner) -> KeywordsOutcome:
        from .core import xmp

        min_prob = xmp.DEFAULT_MIN_PROB if self.min_prob is None else self.min_prob
        parent = keyword_parent(ctx.classifier)
        progress = ctx.progress_of(self)
        out = KeywordsOutcome()
        for i, photo in enumerate(self.photos):
            progress(i, len(self.photos))
            if photo.path is None:
                out.failed.append((photo.item_id, photo.name, "it has no file (image data): there is nowhere to "
                                   "write its keywords"))
                continue
            try:
                sidecar = xmp.write_keywords(Path(photo.path), xmp.keywords_for(photo.top, min_prob), parent)
            except Exception as exc:  # XmpError says what, per photo; anything else is said too, never a crash
                why = str(exc) or type(exc).__name__
                why = why.removeprefix(f"{photo.path}: ").removeprefix("keywords not written: ")  # the name is said
                out.failed.append((photo.item_id, photo.name, why))
            else:
                out.written.append((photo.item_id, str(sidecar)))
        progress(len(self.photos), len(self.photos))
        return out


def keyword_parent(clf: ClassifierLike | None) -> str:
    """The keywords' parent for the model in use: "ResNeXt" for ImageNet's classes, taught classes their own."""
    from .core import xmp

    if clf is None:
        return xmp.DEFAULT_PARENT
    return xmp.parent_for(clf.labels, clf.source.path)
