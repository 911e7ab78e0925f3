"""Answers remembered: a Classifier whose unchanged photos are answered from the results library and whose new answers are kept there.

One object for `classify --library` and the window's worker. ``KnownAnswers`` pairs a classifier (the model that
answers) with a ``Library``: ``lookup`` finds the stored answer of an unchanged photo from the same model,
``keep`` stores a computed one (with its thumbnail), and ``classify_many`` streams answers in input order,
the library's first and the model's for the rest (only those go through the network). The library keeps the last
stage's Grad-CAM maps: an answer with another layer or method is computed, never looked up.

Qt-free and torch-free.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

from .kinds import Layer, Method
from .library import LibraryEntry, model_key, thumbnail_bytes
from .preprocess import Source, source_name

if TYPE_CHECKING:
    from .library import Library
    from .prediction import Prediction

LIBRARY_LAYER: Layer = "layer4"  # the maps the library keeps (another layer or method is computed, not stored)
LIBRARY_METHOD: Method = "gradcam"


def key_of(clf: object) -> str | None:
    """The library's name for the model answering (its checkpoint and preprocessing); None: not known."""
    sha = getattr(getattr(clf, "checkpoint", None), "sha256", None)
    prep = getattr(clf, "preprocessing", None)
    return model_key(sha, prep) if isinstance(sha, str) and prep is not None else None


class CachedAnswer:
    """A photo answered from the results library: stands where classify_many's Prediction would."""

    ok = True
    image = None
    cams = None

    def __init__(self, path: str, record: dict[str, Any], entry: LibraryEntry) -> None:
        self.path, self.record, self.entry = path, record, entry

    def to_record(self) -> dict[str, Any]:
        return dict(self.record)


class KnownAnswers:
    """``clf``'s answers through ``library``: looked up when the photo is unchanged (``lookups``), kept when new.

    ``cached`` and ``computed`` count the answers given each way by ``classify_many``."""

    def __init__(self, clf: Any, library: Library, key: str, lookups: bool = True) -> None:
        self.clf, self.library, self.key, self.lookups = clf, library, key, lookups
        self.cached = self.computed = 0
        self._thumbnails: dict[str, bytes] = {}
        self._said: set[str] = set()

    def notes(self) -> list[str]:
        """What the library has to say that was not said yet, each thing once: asked after opening and after any
        lookup or store (damage found in the middle of the file sets it aside then, naming its new name)."""
        note = self.library.take_note()
        if not note or note in self._said:
            return []
        self._said.add(note)
        return [note]

    @classmethod
    def of(cls, clf: Any, library: Library, lookups: bool = True) -> KnownAnswers | None:
        """The model's answers through the library; None when the model has no key (nothing is then kept)."""
        key = key_of(clf)
        return None if key is None else cls(clf, library, key, lookups)

    @property
    def topk(self) -> int:
        return int(getattr(self.clf, "topk", 1))

    # ---- one photo ----
    def lookup(self, source: Source, layer: Layer = LIBRARY_LAYER, method: Method = LIBRARY_METHOD) -> LibraryEntry | None:
        """The stored answer of an unchanged file from this model, with as many classes as the model gives and
        its maps; None where it is to be computed (another layer or method, image data, a library fault)."""
        if not self.lookups or layer != LIBRARY_LAYER or method != LIBRARY_METHOD or not _is_file(source):
            return None
        try:
            entry = self.library.lookup(source, self.key, min_top=self.topk)
        except Exception:  # a library fault costs a forward pass, never the answer
            return None
        return entry

    def answer(self, source: Source) -> CachedAnswer | None:
        """``lookup`` as the record `classify` prints: the classes asked for, ``"cached": true``, its own time."""
        start = time.perf_counter()
        entry = self.lookup(source)
        if entry is None:
            return None
        record = {k: v for k, v in entry.record.items() if k != "note"}  # a note told of that run, not this one
        record["path"] = source_name(source)
        record["top"] = list(record.get("top") or entry.top)[: self.topk]
        record["ms"] = round((time.perf_counter() - start) * 1000.0, 1)
        record["cached"] = True
        return CachedAnswer(record["path"], record, entry)

    def keep(self, source: Source, pred: Prediction | CachedAnswer, record: dict[str, Any] | None = None,
             thumbnail: bytes | None = None) -> None:
        """Store a computed answer of a file (not one the library gave, nor image data without a file), with its
        thumbnail (made from ``pred.image`` when not given). Raises LibraryError when it could not be saved."""
        if isinstance(pred, CachedAnswer) or not pred.ok or not _is_file(source):
            return
        thumb = thumbnail if thumbnail is not None else self._thumbnails.pop(pred.path, None)
        if thumb is None and pred.image is not None:
            thumb = _thumbnail(pred.image)
        self.library.store(source, self.key, pred, thumbnail=thumb, record=record)

    # ---- a stream of photos ----
    def classify_many(self, sources: Iterable[Source], batch_size: int | None = 1, keep_images: bool = False,
                      **kwargs: Any) -> Iterator[Prediction | CachedAnswer]:
        """The model's ``classify_many`` in input order, with what the library knows answered from it."""
        order: deque[CachedAnswer | None] = deque()  # a CachedAnswer, or None where the model answers

        def to_compute() -> Iterator[Source]:
            for source in sources:
                hit = self.answer(source)
                order.append(hit)
                if hit is None:
                    yield source
                else:
                    self.cached += 1

        # the photo is kept until its thumbnail is made, then let go unless the caller wants it
        for pred in self.clf.classify_many(to_compute(), batch_size=batch_size, keep_images=True, **kwargs):
            while order:
                hit = order.popleft()
                if hit is None:  # this one: the model's answer
                    break
                yield hit
            self.computed += 1
            if pred.ok and pred.image is not None:
                thumb = _thumbnail(pred.image)
                if thumb is not None:
                    self._thumbnails[pred.path] = thumb
            if not keep_images:
                pred.image = None
            yield pred
        while order:
            hit = order.popleft()
            if hit is not None:
                yield hit

    def forget_thumbnail(self, pred: Prediction | CachedAnswer) -> None:
        """A computed answer that is not kept (it failed on the way out): its thumbnail goes too."""
        self._thumbnails.pop(pred.path, None)


def _is_file(source: object) -> TypeGuard[str | os.PathLike[str]]:
    """A photo given by its file (a path), not as encoded bytes: only files are looked up and kept."""
    return isinstance(source, (str, os.PathLike))


def _thumbnail(image: object) -> bytes | None:
    from PIL import Image

    if not isinstance(image, Image.Image):
        return None
    try:
        return thumbnail_bytes(image)
    except (OSError, ValueError, MemoryError):
        return None

