"""The results library on the worker thread: photos answered from it, new answers kept in it, and the window's gallery written to it.

The worker owns one core Library (its sqlite connection belongs to the worker thread: it is opened there,
after the model has loaded, and closed there when the thread ends). A photo is answered from it when the file
is unchanged and the model is the same (core.answers.KnownAnswers); every new answer of the last stage's
Grad-CAM maps is kept.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.kinds import Layer, Method
from .images import PhotoSource, map_indices, name_of, thumbnail_from_bytes
from .results import LibraryInfo, PhotoResult

if TYPE_CHECKING:
    from ..core.answers import KnownAnswers
    from ..core.library import Library, LibraryEntry
    from ..core.prediction import Prediction

log = logging.getLogger(__name__)


class LibraryKeeper:
    """The worker's Library, opened and used on the worker thread only; ``keep_gallery`` may be called from any."""

    def __init__(self, path: str | os.PathLike[str] | None, pixel_ratio: float) -> None:
        self.path = Path(path) if path else None
        self.pixel_ratio = pixel_ratio
        self.lib: Library | None = None
        self.note: str | None = None
        self._opened = False
        self._answers: tuple[object, KnownAnswers | None] | None = None  # (classifier, its answers through the library)
        self._store_failed = False
        self._lock = threading.Lock()
        self._gallery: list[str] | None = None  # the window's gallery, to be written

    def open(self) -> None:
        if self._opened or self.path is None:
            return
        self._opened = True
        try:
            from ..core.library import Library

            self.lib = Library(self.path)
        except Exception as exc:  # a folder that can't be written, a disk fault: the app works on, without it
            log.warning("the results library %s could not be opened: %s", self.path, exc)
            self.lib = None
            self.note = (f"The results library {self.path} could not be opened ({exc}). "
                         "Results are not kept this time.")

    def take_note(self) -> str | None:
        """What the library has to tell the user, once (it may find a problem at any read, not only at opening)."""
        note, self.note = self.note, None
        if self.lib is not None:
            note = note or self.lib.take_note()
        return note

    def info(self, changed: int = 0) -> LibraryInfo:
        if self.lib is None:
            return LibraryInfo(str(self.path or ""), note=self.take_note())
        count, size = self.lib.count(), self.lib.size_bytes()
        return LibraryInfo(str(self.path), count, size, True, changed, self.take_note())

    def answers(self, clf: object) -> KnownAnswers | None:
        """The model's answers through the library (None: no library, or a model it can't name)."""
        if self.lib is None:
            return None
        if self._answers is None or self._answers[0] is not clf:
            from ..core.answers import KnownAnswers

            self._answers = (clf, KnownAnswers.of(clf, self.lib))
        return self._answers[1]

    # ---- photos ----
    def answer(self, clf: object, item_id: int, source: PhotoSource, layer: Layer, method: Method) -> PhotoResult | None:
        """The library's answer for an unchanged photo and the same model; None: it is to be computed."""
        answers = self.answers(clf)
        if answers is None or not isinstance(source, str):
            return None
        entry = answers.lookup(source, layer, method)
        return None if entry is None else self.result(item_id, source, entry, answers.key)

    def result(self, item_id: int, source: str, entry: LibraryEntry, model: str | None = None) -> PhotoResult | None:
        """A stored entry as the window's PhotoResult (None: the entry lacks what the window shows)."""
        from ..core.prediction import TopClass

        if not entry.top or entry.maps is None or entry.crop is None or not entry.image_size:
            return None
        top = [TopClass(int(t["rank"]), int(t["index"]), str(t["label"]), float(t["prob"])) for t in entry.top]
        width, height = entry.image_size
        left, top_, right, bottom = entry.crop
        name = name_of(source)
        record = {**entry.record, "path": name, "cached": True}
        return PhotoResult(
            item_id, True, name, top=top, maps=map_indices(entry.maps),
            crop=(left / width, top_ / height, right / width, bottom / height),
            thumb=thumbnail_from_bytes(entry.thumbnail, self.pixel_ratio), device=str(entry.record.get("device", "")),
            layer="layer4", record=record, size=(width, height), cached=True, model=model,
        )

    def keep(self, clf: object, source: PhotoSource, pred: Prediction) -> str | None:
        """Store a new answer (a file's last-stage Grad-CAM); a note when storing failed, said once."""
        answers = self.answers(clf)
        if answers is None or not isinstance(source, str) or pred.layer != "layer4" or pred.method != "gradcam":
            return None
        try:
            answers.keep(source, pred)
        except Exception as exc:  # a full disk: the answer is shown all the same; said once
            log.warning("not kept in the results library: %s", exc)
            if not self._store_failed:
                self._store_failed = True
                return f"Not kept in the results library: {exc}"
        return None

    # ---- the window's gallery ----
    def keep_gallery(self, paths: list[str]) -> None:
        """Any thread: the gallery to write (the worker writes it next, and when it stops)."""
        with self._lock:
            self._gallery = list(paths)

    def flush(self) -> None:
        """Write the gallery kept last, once the library is open (until then it waits)."""
        if self.lib is None:
            return
        with self._lock:
            paths, self._gallery = self._gallery, None
        if paths is not None:
            try:
                self.lib.set_gallery(paths)
            except Exception as exc:  # not remembered: the next start shows an older gallery, nothing worse
                log.warning("the gallery could not be kept: %s", exc)

    def close(self) -> None:
        self.flush()
        if self.lib is not None:
            try:
                self.lib.close()
            finally:
                self.lib = None
