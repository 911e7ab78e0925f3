"""Similar photos and near-duplicates of real files: each photo's features and dHash gathered (from the results
library, or computed once and kept there), then ranked or grouped by core.similarity.

What the `similar` and `duplicates` commands run, and what the window's Find Similar and Find Duplicates call
on the worker thread:

    found = gather(paths, classifier, library)           # or gather(None, ...): every photo of the library
    found.similar_to(k, top=20)                          # [Match(path, similarity)], most similar first
    found.duplicates(threshold=DEFAULT_THRESHOLD)        # [DuplicateGroup(paths, similarity, keep)]

``found.index`` is the SimilarityIndex of the photos gathered (built on first use, kept): ask it again for
another photo's ranking without gathering again. Qt-free and torch-free.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .preprocess import source_name
from .similarity import DEFAULT_THRESHOLD, DEFAULT_TOP, KeeperFacts, SimilarityIndex, choose_keeper

if TYPE_CHECKING:
    from .classifier import Classifier
    from .library import Library
    from .prediction import Prediction

PathLike = str | os.PathLike[str]


@dataclass
class PhotoVector:
    """One photo ready to be compared."""

    path: str
    features: np.ndarray  # (2048,) float16: the last stage's pooled activations
    dhash: int  # 64-bit difference hash
    pixels: int  # width x height of the photo (oriented, full size); 0 when not known
    mtime_ns: int  # the file's modification time when gathered
    cached: bool  # from the results library, without a forward pass


@dataclass
class VectorFailure:
    """A photo that could not be compared, with the same message ``classify`` gives for it."""

    path: str
    error: str


@dataclass
class Match:
    path: str
    similarity: float


@dataclass
class DuplicateGroup:
    """Near-duplicates: ``paths`` with the suggested keeper first, then the others, most similar to it first;
    ``similarity``: the group's weakest link (core.similarity.Group)."""

    paths: list[str]
    similarity: float
    keep: str

    def to_record(self) -> dict[str, object]:
        return {"paths": list(self.paths), "similarity": round(self.similarity, 4), "keep": self.keep}


@dataclass
class Gathered:
    """The photos gathered, in the order asked (failures apart), and what became of the others."""

    vectors: list[PhotoVector] = field(default_factory=list)
    failures: list[VectorFailure] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # library photos whose files are no longer there
    _index: SimilarityIndex | None = field(default=None, repr=False)

    @property
    def cached(self) -> int:
        return sum(v.cached for v in self.vectors)

    @property
    def computed(self) -> int:
        return len(self.vectors) - self.cached

    @property
    def index(self) -> SimilarityIndex:
        """The SimilarityIndex of ``vectors`` (statistics of exactly these photos), built once."""
        if self._index is None:
            feats = np.stack([v.features for v in self.vectors]) if self.vectors else np.zeros((0, 2048), np.float16)
            self._index = SimilarityIndex(feats, [v.dhash for v in self.vectors])
        return self._index

    def position(self, path: PathLike) -> int | None:
        """The index of the photo at ``path`` in ``vectors`` (compared by absolute path), or None."""
        wanted = os.path.abspath(os.fspath(path))
        for k, v in enumerate(self.vectors):
            if os.path.abspath(v.path) == wanted:
                return k
        return None

    def similar_to(self, k: int, top: int | None = DEFAULT_TOP) -> list[Match]:
        """The photos most similar to ``vectors[k]``, most similar first (ties: in the order gathered); the photo
        itself and any other name for the same file left out; ``top`` at most (None: all)."""
        own = os.path.realpath(self.vectors[k].path)
        others = [j for j, v in enumerate(self.vectors) if j != k and os.path.realpath(v.path) != own]
        ranked = self.index.most_similar(k, top, among=np.asarray(others, dtype=np.int64))
        return [Match(self.vectors[j].path, s) for j, s in ranked]

    def duplicates(self, threshold: float = DEFAULT_THRESHOLD) -> list[DuplicateGroup]:
        """The groups of near-duplicates at ``threshold``, the surest first; photos with none are left out."""
        out = []
        for group in self.index.groups(threshold):
            facts = [KeeperFacts(self.vectors[m].path, self.vectors[m].pixels, self.vectors[m].mtime_ns)
                     for m in group.members]
            keeper = group.members[choose_keeper(facts)]
            others = [m for m in group.members if m != keeper]
            others.sort(key=lambda m: (-self.index.similarity(keeper, m), self.vectors[m].path))
            paths = [self.vectors[m].path for m in (keeper, *others)]
            out.append(DuplicateGroup(paths, group.similarity, paths[0]))
        return out


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _from_prediction(pred: Prediction) -> PhotoVector | VectorFailure:
    if not pred.ok:
        return VectorFailure(pred.path, pred.error or f"{pred.path} could not be read")
    if pred.features is None or pred.dhash is None:
        return VectorFailure(pred.path, f"{pred.path}: the model's features are not finite numbers; it can't be compared")
    width, height = pred.image_size or (0, 0)
    return PhotoVector(pred.path, pred.features, int(pred.dhash), int(width) * int(height), _mtime(pred.path), False)


def vectors_of(sources: Iterable[PathLike], classifier: Classifier, library: Library | None = None,
               batch_size: int = 1, cancelled: Callable[[], bool] | None = None
               ) -> Iterator[PhotoVector | VectorFailure]:
    """Each photo's vector, in input order: from ``library`` when it holds one for the photo unchanged (its own
    ``lookup`` decides: a changed photo is computed again, never compared by its old vector), else computed by
    ``classifier`` and, with a library, stored there (with its answer and thumbnail)."""
    from .library import LibraryError, model_key, thumbnail_bytes

    key = model_key(classifier.checkpoint.sha256, classifier.preprocessing) if library is not None else ""
    order: deque[PhotoVector | None] = deque()  # a library answer, or None where the model answers, in order

    def to_compute() -> Iterator[PathLike]:
        for src in sources:
            hit = None
            if library is not None:
                entry = library.lookup(src, key)
                if entry is not None and entry.features is not None and entry.dhash is not None:
                    width, height = entry.image_size or (0, 0)
                    name = source_name(src)
                    hit = PhotoVector(name, entry.features, entry.dhash, width * height, _mtime(name), True)
            order.append(hit)
            if hit is None:
                yield src

    keep_images = library is not None
    for pred in classifier.classify_many(to_compute(), batch_size=batch_size, keep_images=keep_images,
                                         cancelled=cancelled):
        while order and order[0] is not None:
            cached = order.popleft()
            assert cached is not None
            yield cached
        order.popleft()
        if library is not None and pred.ok and pred.features is not None:
            try:
                thumb = thumbnail_bytes(pred.image) if pred.image is not None else None  # type: ignore[arg-type]
            except (OSError, ValueError, MemoryError):
                thumb = None
            try:
                library.store(pred.path, key, pred, thumbnail=thumb)
            except LibraryError:
                pass  # not kept: computed again next time, compared all the same now
        pred.image = None
        yield _from_prediction(pred)
    if cancelled is not None and cancelled():
        return
    while order:
        cached = order.popleft()
        assert cached is not None
        yield cached


def gather(paths: Sequence[PathLike] | None, classifier: Classifier, library: Library | None = None,
           batch_size: int = 1, progress: Callable[[int, int], None] | None = None,
           cancelled: Callable[[], bool] | None = None) -> Gathered:
    """The vectors of ``paths`` (files, in order), or with ``paths=None`` of every photo ``library`` holds for
    this classifier's model: stored vectors of unchanged files are read in one pass, changed files are looked
    up again (same bytes: the stored vector; other bytes: computed), answers without a vector yet are computed
    and stored, and files that are gone are left out (``gone``). ``progress(done, total)`` after each photo."""
    out = Gathered()
    if paths is None:
        if library is None:
            raise ValueError("gather(None, ...) compares the library's photos: give the library")
        paths = _library_photos(classifier, library, out)
    todo = list(paths)
    for done, item in enumerate(vectors_of(todo, classifier, library, batch_size, cancelled), start=1):
        (out.vectors if isinstance(item, PhotoVector) else out.failures).append(item)  # type: ignore[arg-type]
        if progress is not None:
            progress(done, len(todo))
    return out


def _library_photos(classifier: Classifier, library: Library, out: Gathered) -> list[str]:
    """The library's photos for ``vectors_of``: those stored unchanged go straight into ``out`` (no lookup per
    photo); the rest (changed, or with no vector yet) are returned to be looked up or computed."""
    from .library import model_key

    stored = library.stored_vectors(model_key(classifier.checkpoint.sha256, classifier.preprocessing))
    again: list[str] = []
    for k, path in enumerate(stored.paths):
        try:
            st = os.stat(path)
        except OSError:
            out.gone.append(path)
            continue
        if not stat.S_ISREG(st.st_mode):
            out.gone.append(path)
        elif st.st_size == int(stored.sizes[k]) and st.st_mtime_ns == int(stored.mtimes_ns[k]):
            out.vectors.append(PhotoVector(path, stored.features[k], int(stored.hashes[k]), int(stored.pixels[k]),
                                           st.st_mtime_ns, True))
        else:
            again.append(path)
    for path in stored.missing:
        (again if os.path.isfile(path) else out.gone).append(path)
    return again


__all__ = ["DuplicateGroup", "Gathered", "Match", "PhotoVector", "VectorFailure", "gather", "vectors_of"]
