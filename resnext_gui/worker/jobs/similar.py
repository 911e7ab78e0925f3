"""Jobs of Find Similar and Find Duplicates… (the gallery's photos compared, a few at a time) and of Move to Trash and its Undo.

Comparing needs every photo's features and dHash: core.similar_photos.gather reads them from the results
library, or computes them (and keeps them there). A job gathers ``CHUNK`` photos a step, in the background
lane, so what the user asks for meanwhile (showing a photo, a save) and the batch keep moving. What was
gathered, with its SimilarityIndex, is kept in a ``VectorMemo`` that the window hands to every such job: the
next Find Similar, or the next threshold of Find Duplicates, reuses it while the gallery, its files and the
model are the same (building the index costs more than asking it).

Moving to the trash is Qt's ``QFile.moveToTrash`` (the desktop's trash, restorable from the file manager: the
freedesktop.org trash on Linux, with a ``.trashinfo`` beside each file); nothing here deletes a photo. Undo
moves each file back from where ``moveToTrash`` put it, and removes the ``.trashinfo`` it wrote.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ...core.similarity import DEFAULT_THRESHOLD
from ..queue import AGAIN, CANCELLED, Again, Cancellable, Job, JobFailed, Lane
from ..results import DuplicatesFound, SimilarOrder, Trashed, Untrashed

if TYPE_CHECKING:
    from ...core.classifier import Classifier
    from ...core.similar_photos import Gathered
    from ..runner import Context

CHUNK = 8  # photos gathered per step (at most this many forward passes before the next job's turn)


@dataclass
class GalleryVectors:
    """The gallery's photos gathered for one model: ``found`` (its index built once, on first use)."""

    model: str  # core.library.model_key of the classifier that computed them
    paths: tuple[str, ...]  # the photos asked for, in the order asked
    found: Gathered

    def fits(self, model: str, paths: tuple[str, ...]) -> bool:
        """Whether these vectors still answer for ``paths`` with this model: the same photos, none of whose files
        changed since (a changed photo is gathered again, never compared by its old features)."""
        if model != self.model or paths != self.paths:
            return False
        for v in self.found.vectors:
            try:
                if os.stat(v.path).st_mtime_ns != v.mtime_ns:
                    return False
            except OSError:
                return False
        return True


class VectorMemo:
    """The last photos gathered, shared by the jobs of one window; read and written on the worker thread only."""

    def __init__(self) -> None:
        self.last: GalleryVectors | None = None


def _model_of(clf: Classifier) -> str:
    from ...core.library import model_key

    return model_key(clf.checkpoint.sha256, clf.preprocessing)


@dataclass(eq=False)
class _Gathering(Cancellable):
    """What both comparing jobs share: gather ``paths`` a step at a time (or reuse the memo), cancellable between
    photos; each step returns AGAIN until every photo is in."""

    paths: list[str]
    memo: VectorMemo
    cancel: threading.Event
    _parts: Gathered | None = field(default=None, init=False, repr=False)
    _done: int = field(default=0, init=False, repr=False)
    computed: int = field(default=0, init=False)  # photos whose features were computed (not from the library)

    def _gathered(self, ctx: Context, job: Job[Any]) -> GalleryVectors | Again:
        from ...core.errors import ResnextGuiError
        from ...core.similar_photos import Gathered, gather

        if self.cancel.is_set():
            raise JobFailed(CANCELLED)
        # core.similar_photos compares with the core's Classifier (its classify_many, checkpoint, preprocessing)
        clf = cast("Classifier", ctx.require_classifier("No model is loaded: photos are compared by the model's "
                                                        "features. Wait for it to load, or choose weights."))
        model, paths = _model_of(clf), tuple(self.paths)
        memo = self.memo.last
        if self._parts is None and memo is not None and memo.fits(model, paths):
            return memo
        if self._parts is None:
            self._parts = Gathered()
            self.memo.last = None  # stale: let it go before gathering again
        ctx.library.open()
        total, start = len(paths), self._done
        progress = ctx.progress_of(job)
        try:
            part = gather(paths[start:start + CHUNK], clf, ctx.library.lib,
                          progress=lambda done, _n: progress(start + done, total), cancelled=self.cancel.is_set)
        except ResnextGuiError as exc:
            raise JobFailed(str(exc)) from exc
        if self.cancel.is_set():
            raise JobFailed(CANCELLED)
        self._parts.vectors.extend(part.vectors)
        self._parts.failures.extend(part.failures)
        self.computed += part.computed
        self._done = min(total, start + CHUNK)
        if self._done < total:
            return AGAIN
        self.memo.last = GalleryVectors(model, paths, self._parts)
        return self.memo.last


@dataclass(eq=False)
class FindSimilarJob(Job[SimilarOrder], _Gathering):
    """Find Similar: every photo of ``paths`` ranked by its similarity to ``target`` (one of them)."""

    lane: ClassVar[Lane] = "background"
    target: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    def run(self, ctx: Context) -> SimilarOrder | Again:
        got = self._gathered(ctx, self)
        if isinstance(got, Again):
            return got
        found = got.found
        k = found.position(self.target)
        if k is None:
            why = next((f.error for f in found.failures if os.path.abspath(f.path) == os.path.abspath(self.target)),
                       "it is not among the photos compared")
            raise JobFailed(f"{os.path.basename(self.target)} can't be compared: {why}")
        ranked = [(m.path, m.similarity) for m in found.similar_to(k, top=None)]
        note = None
        if len(found.vectors) < 3:
            note = "With fewer than three photos the figure is the hash's alone."
        return SimilarOrder(self.target, ranked,
                            [(f.path, f.error) for f in found.failures], self.computed, note)


@dataclass(eq=False)
class FindDuplicatesJob(Job[DuplicatesFound], _Gathering):
    """Find Duplicates…: the groups of near-duplicates among ``paths`` at ``threshold``, each with its keeper."""

    lane: ClassVar[Lane] = "background"
    threshold: float = DEFAULT_THRESHOLD
    cancel: threading.Event = field(default_factory=threading.Event)

    def run(self, ctx: Context) -> DuplicatesFound | Again:
        got = self._gathered(ctx, self)
        if isinstance(got, Again):
            return got
        found = got.found
        groups = found.duplicates(self.threshold)
        where = {v.path: k for k, v in enumerate(found.vectors)}
        pixels: dict[str, int] = {}
        figures: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for group in groups:
            keeper = where[group.keep]
            for path in group.paths:
                pixels[path] = found.vectors[where[path]].pixels
                figures[path] = found.index.similarity(keeper, where[path])
                try:
                    sizes[path] = os.stat(path).st_size
                except OSError:
                    sizes[path] = 0
        return DuplicatesFound(self.threshold, groups, len(found.vectors), pixels, figures, sizes,
                               [(f.path, f.error) for f in found.failures], self.computed)


# ---- the trash ----
def move_to_trash(paths: list[str]) -> Trashed:
    """Each file to the desktop's trash (QFile.moveToTrash: restorable from the file manager), one at a time: a
    file that can't be moved is said with why, and the others go on. Nothing is ever deleted."""
    from PySide6.QtCore import QFile, QStandardPaths

    # Qt makes the home trash (…/Trash) but not the data folder it lies in: a new account may have none yet
    data = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    if data:
        try:
            os.makedirs(data, mode=0o700, exist_ok=True)
        except OSError:
            pass  # then each file says why it was not moved
    out = Trashed()
    for path in paths:
        if not os.path.lexists(path):
            out.failed.append((path, "the file is no longer there"))
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            out.failed.append((path, "it is a folder, not a photo"))
            continue
        file = QFile(os.path.abspath(path))
        if file.moveToTrash():
            out.moved.append((path, file.fileName()))
        else:
            out.failed.append((path, _why_not_moved(path, file.errorString())))
    return out


def _why_not_moved(path: str, said: str) -> str:
    """Qt's reason, or what the folder's permissions say (Qt often has none for a refused rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is read-only"
    return said or "the desktop's trash refused it"


def trash_info(in_trash: str) -> Path | None:
    """The ``.trashinfo`` the freedesktop.org trash keeps for a file at ``in_trash`` (…/Trash/files/NAME ->
    …/Trash/info/NAME.trashinfo); None where the file is not in such a trash."""
    where = Path(in_trash)
    if where.parent.name != "files":
        return None
    return where.parent.parent / "info" / f"{where.name}.trashinfo"


def restore_from_trash(moved: list[tuple[str, str]]) -> Untrashed:
    """Each file back from the trash to where it was (``moved``: (its path, where moveToTrash put it)), and the
    trash's ``.trashinfo`` of it removed. A file whose place is taken meanwhile, or that is no longer in the trash
    (emptied, or restored from the file manager), stays where it is and is said; the others go on."""
    out = Untrashed()
    for path, in_trash in moved:
        if not os.path.lexists(in_trash):
            if os.path.lexists(path):  # restored from the file manager already
                out.restored.append(path)
            else:
                out.failed.append((path, "it is no longer in the trash (was the trash emptied?)"))
            continue
        try:
            _put_back(in_trash, path)
        except OSError as exc:
            out.failed.append((path, f"it could not be put back from {in_trash}: {exc.strerror or exc}"))
            continue
        info = trash_info(in_trash)
        if info is not None:
            try:
                info.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # the file is back all the same; the file manager lists a stale entry
                out.notes.append(f"{info} could not be removed: {exc.strerror or exc}")
        out.restored.append(path)
    return out


def _put_back(in_trash: str, path: str) -> None:
    """Move ``in_trash`` to ``path``, never over a file there: a hard link where the file system allows (taken
    atomically), else a rename or, across file systems, a copy."""
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "another file is at its place now")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        os.link(in_trash, path, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "another file is at its place now") from None
    except OSError:  # links not allowed here, or another file system
        shutil.move(in_trash, path)
        return
    try:
        os.unlink(in_trash)
    except OSError:
        os.unlink(path)  # only a second name of the file in the trash: it stays there, whole, and is said
        raise


@dataclass(eq=False)
class TrashJob(Job[Trashed]):
    """Move to Trash: these files to the desktop's trash."""

    paths: list[str]

    def run(self, ctx: Context) -> Trashed:
        return move_to_trash(self.paths)


@dataclass(eq=False)
class UntrashJob(Job[Untrashed]):
    """Undo Move to Trash: the files back where they were."""

    moved: list[tuple[str, str]]

    def run(self, ctx: Context) -> Untrashed:
        return restore_from_trash(self.moved)
