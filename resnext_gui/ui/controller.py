"""Links the gallery model to the worker, with no widgets: what is queued, the answers, what was asked for,
Stop, Clear, Undo, Retry, Remove and the batch's progress."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from ..core.cam import ONE_PASS
from ..core.kinds import DEFAULT_LAYER, DEFAULT_METHOD, Layer, Method
from ..core.records import write_records
from ..worker.images import PhotoSource
from ..worker.jobs.photo import ClassifyJob, RecomputeJob, ViewJob
from ..worker.results import PhotoResult
from ..worker.runner import WorkerLike
from .controls import layer_name
from .gallery import GalleryModel, Photo, Status
from .messages import Messages
from .paced import PacedQueue
from .text import plural


class ModelState(str, enum.Enum):
    """Where the model is; the value is what the window's modelStateChanged signal carries."""

    LOADING = "loading"
    READY = "ready"
    MISSING = "missing"  # no weights: photos wait
    FAILED = "failed"  # a chosen file was refused (the previous model, if any, stays)


UNDO_DEPTH = 20  # Clears and Removes that Ctrl+Z can take back, last first

WAITING = {ModelState.MISSING: "Waiting for weights", ModelState.LOADING: "Waiting for the model"}


class BatchController(QObject):
    """The photos' side of the app. ``current`` says which photo the user is looking at (None: none)."""

    updated = Signal(object)  # Photo: its result, recomputed result, full view or note changed
    refreshWanted = Signal()  # the photo shown needs showing again (its waiting text, a stop)
    selectWanted = Signal(object, bool)  # Photo to make the current one (new arrivals, an undone Clear), and focus the gallery
    cleared = Signal()
    progressChanged = Signal(int, int)  # photos answered, photos in the batch (0: no bar)
    summaryChanged = Signal(str)  # "12 photos · 2 not classified · 3 waiting"
    answerTime = Signal(str)  # "96 ms · <note>": how long the last answer took
    undoChanged = Signal()  # whether there is a Clear or Remove to undo (undo_text) may have changed
    alreadyKnown = Signal(int, int)  # listing id, how many of its photos the gallery already had

    def __init__(self, photos: GalleryModel, worker: WorkerLike, messages: Messages, current: Callable[[], Photo | None],
                 parent: QObject | None = None, selection: Callable[[], list[Photo]] | None = None) -> None:
        super().__init__(parent)
        self.photos, self.worker, self.messages, self.current = photos, worker, messages, current
        # the photos selected in the gallery (several with Shift/Ctrl); by default the current one alone
        self.selection = selection or (lambda: [p for p in (current(),) if p is not None])
        self.layer: Layer = DEFAULT_LAYER
        self.method: Method = DEFAULT_METHOD  # the CAM method chosen; Score-CAM's own maps come from ui.cam_methods
        self.model_state = ModelState.LOADING
        self._batch = [0, 0]  # photos in the current batch, and how many have their answer
        self._answers: PacedQueue[PhotoResult] = PacedQueue(self._take_answer, self)
        self._views_asked: set[int] = set()  # full views on their way
        self._views_failed: set[int] = set()  # asked again only when the user selects the photo again
        self._layer_asked: dict[int, tuple[Layer, Method]] = {}  # recomputes on their way: photo -> (layer, method)
        self._layer_failed: set[tuple[int, Layer, Method]] = set()  # never asked again for that photo, layer and method
        # What Clear and Remove took out, last first (Undo brings back the last): (what, photos, their rows or None)
        self._undo: list[tuple[str, list[Photo], list[int] | None]] = []
        # Every pixel of one photo at a time (the one zoomed past its display copy, or being saved), decoded by
        # the worker: never cached with the display copies, so memory holds at most one full photo.
        self._full: tuple[int, QImage] | None = None
        self._full_asked: int | None = None
        self._full_failed: set[int] = set()
        photos.countsChanged.connect(self._update_summary)

    # ---- photos in ----
    def enqueue(self, sources: list[tuple[PhotoSource, str]], select: bool = True, listing: int = 0) -> list[Photo]:
        """Queue what is new. Photos the gallery has already are said here, or, for a slice of a folder
        listing (``listing`` != 0), counted through ``alreadyKnown`` so the listing's end says them all at once."""
        new = self.photos.add(sources)
        again = self._requeue_stopped(sources, new) if len(new) < len(sources) else 0
        if len(new) + again < len(sources):
            n = len(sources) - len(new) - again
            if listing:
                self.alreadyKnown.emit(listing, n)
            else:
                self.messages.show_status(f"{plural(n, 'photo is', 'photos are')} already in the gallery.", 6000)
        for photo in new:
            self._classify(photo)
        self._batch[0] += len(new)
        self._update_progress()
        if new and (select or self.current() is None):
            self.selectWanted.emit(new[0], True)
        return new

    def _requeue_stopped(self, sources: list[tuple[PhotoSource, str]], new: list[Photo]) -> int:
        """A stopped photo given again (its folder dropped again after Stop) goes back in line; returns how many."""
        added = {p.item_id for p in new}
        todo = []
        for source, _name in sources:
            photo = self.photos.known(source)
            if photo is not None and photo.item_id not in added and photo.status is Status.STOPPED:
                todo.append(photo)
                added.add(photo.item_id)
        for photo in todo:
            self.photos.requeue(photo)
            self._classify(photo)
        if todo:
            self._batch[0] += len(todo)
            if self.current() in todo:
                self.refreshWanted.emit()
        return len(todo)

    def _classify(self, photo: Photo) -> None:
        """Send one photo to be classified, with the layer and one-pass method chosen; its answer comes in order."""
        assert photo.source is not None  # photos in the gallery that can be classified have one
        job = ClassifyJob(photo.item_id, photo.source, self.layer, self.one_pass_method)
        self.worker.submit(job, self._answers.put,
                           lambda message: self._answers.put(PhotoResult.failure(job.item_id, job.name, message)))

    # ---- the model ----
    def set_model(self, key: str | None, name: str) -> None:
        """The model in use (another weights file, or the same one renamed by Save): answers another model gave
        are marked, and the photo shown is classified again at once (the others when shown, or with Retry)."""
        changed = key != self.photos.model_key
        self.photos.set_model(key, name)
        if changed:
            self._layer_asked.clear()  # what was asked of the last model is asked again of this one
            self._layer_failed.clear()
            self.refreshWanted.emit()

    def set_model_state(self, state: ModelState) -> None:
        self.model_state = state
        self.photos.set_waiting_text(WAITING.get(state, "Classifying…"))
        cur = self.current()
        if cur is not None and cur.status is Status.QUEUED:
            self.refreshWanted.emit()
        self._update_progress()

    # ---- what the photo shown asks for ----
    def set_layer(self, layer: Layer) -> None:
        self.layer = layer
        self._layer_failed.clear()  # a new choice: each photo gets one try again

    def set_method(self, method: Method) -> None:
        self.method = method
        self._layer_failed.clear()

    @property
    def one_pass_method(self) -> Method:
        """The method of the maps computed with each answer: the one chosen, or Grad-CAM while Score-CAM is
        (Score-CAM is computed for the photo shown only)."""
        return self.method if self.method in ONE_PASS else "gradcam"

    def want_layer(self, photo: Photo) -> None:
        """The chosen layer and method hold for every photo: one shown with others is recomputed, once; so is
        one shown with another model's answer (from the library, when it holds this model's).
        With Score-CAM chosen the photo keeps its one-pass map until its Score-CAM maps come."""
        res = photo.result
        wanted: tuple[Layer, Method] = (self.layer, self.one_pass_method)
        other = self.photos.other_model(photo) is not None
        if (photo.status is not Status.DONE or res is None or photo.source is None
                or (self.method not in ONE_PASS and not other)
                or ((res.layer, res.method) == wanted and not other) or self._layer_asked.get(photo.item_id) == wanted
                or (photo.item_id, *wanted) in self._layer_failed):
            return
        self._layer_asked[photo.item_id] = wanted
        job = RecomputeJob(photo.item_id, photo.source, *wanted)
        self.worker.submit(job, self._on_recomputed, partial(self._on_recompute_failed, job))

    def layer_pending(self, photo: Photo) -> bool:
        return self._layer_asked.get(photo.item_id) == (self.layer, self.one_pass_method)

    def recompute_pending(self, photo: Photo) -> bool:
        """A recompute of ``photo`` is on its way (for any layer or method): its maps are about to change."""
        return photo.item_id in self._layer_asked

    def want_view(self, photo: Photo) -> None:
        """The full photo for the view (its display copy was dropped), unless asked already or failed."""
        if photo.source is not None and photo.item_id not in self._views_asked | self._views_failed:
            self._views_asked.add(photo.item_id)
            job = ViewJob(photo.item_id, photo.source)
            self.worker.submit(job, partial(self._on_view_ready, job), partial(self._on_view_failed, job))

    def want_full(self, photo: Photo) -> bool:
        """Every pixel of ``photo``: True when here already (``full_view``), else asked for once (``updated`` follows)."""
        if self.full_view(photo) is not None:
            return True
        if photo.source is not None and photo.item_id != self._full_asked and photo.item_id not in self._full_failed:
            self._full_asked = photo.item_id
            job = ViewJob(photo.item_id, photo.source, full=True)
            self.worker.submit(job, partial(self._on_view_ready, job), partial(self._on_view_failed, job))
        return False

    def full_view(self, photo: Photo) -> QImage | None:
        return self._full[1] if self._full is not None and self._full[0] == photo.item_id else None

    def full_failed(self, photo: Photo) -> bool:
        return photo.item_id in self._full_failed

    def selected(self, photo: Photo) -> None:
        self._views_failed.discard(photo.item_id)  # the user chose it again: the file may be back

    # ---- answers ----
    def _take_answer(self, res: PhotoResult) -> None:
        photo = self.photos.set_result(res)
        if photo is None:
            return  # cleared meanwhile
        self._batch[1] += 1
        self._update_progress()
        if res.ok:
            took = "from the library" if res.cached else f"{res.ms:.0f} ms"
            self.answerTime.emit(took + (f" · {res.note}" if res.note else ""))
        self.updated.emit(photo)

    def _on_recomputed(self, res: PhotoResult) -> None:
        self._layer_asked.pop(res.item_id, None)
        photo = self.photos.set_recomputed(res)
        if photo is not None:
            self.updated.emit(photo)

    def _on_recompute_failed(self, job: RecomputeJob, message: str) -> None:
        layer, method = self._layer_asked.pop(job.item_id, (job.layer, job.method))
        self._layer_failed.add((job.item_id, layer, method))  # not asked again: the note says which map is shown
        photo = self.photos.get(job.item_id)
        if photo is not None and photo.result is not None:
            shown = layer_name(photo.result.layer)
            self.photos.set_note(photo, f"Could not compute the new heatmap: {message} Showing the {shown} map.")
            self.updated.emit(photo)

    def _on_view_ready(self, job: ViewJob, image: QImage) -> None:
        if job.full:
            if self._full_asked == job.item_id:
                self._full_asked = None
            photo = self.photos.get(job.item_id)
            if photo is not None:
                self._full = (job.item_id, image)
                self.updated.emit(photo)
            return
        self._views_asked.discard(job.item_id)
        self.photos.cache_display(job.item_id, image)
        photo = self.photos.get(job.item_id)
        if photo is not None:
            self.updated.emit(photo)

    def _on_view_failed(self, job: ViewJob, message: str) -> None:
        if job.full:
            if self._full_asked == job.item_id:
                self._full_asked = None
            self._full_failed.add(job.item_id)
            photo = self.photos.get(job.item_id)
            if photo is not None:
                self.photos.set_note(photo, f"Could not read the whole photo: {message} Showing its reduced copy.")
                self.updated.emit(photo)
            return
        self._views_asked.discard(job.item_id)
        self._views_failed.add(job.item_id)
        photo = self.photos.get(job.item_id)
        if photo is not None:
            shown = " Showing its thumbnail." if photo.thumb is not None else ""
            self.photos.set_note(photo, f"Could not show the full photo: {message}{shown}")
            self.updated.emit(photo)

    # ---- what the user does to the batch ----
    def stop(self) -> None:
        """Drop the photos still waiting (the one being computed finishes)."""
        stopped = self.photos.mark_stopped(self._cancel_batch())
        self._batch = [0, 0]
        self._update_progress()
        running = self.photos.counts()[Status.QUEUED]  # already being computed: its answer still comes
        if stopped or running:
            text = f"Stopped {plural(stopped, 'photo')} before classification."
            if running:
                text += f" {running} already in progress will finish."
            self.messages.show_status(text, 8000)
        self.refreshWanted.emit()

    def _cancel_batch(self) -> list[int]:
        """The photos of the batch not started yet are dropped from the worker's queue: their ids."""
        return [job.item_id for job in self.worker.cancel_batch() if isinstance(job, ClassifyJob)]

    def clear(self) -> None:
        """Stop and empty the gallery; undo brings the photos back."""
        self._cancel_batch()
        gone = self.photos.clear()
        if gone:
            self._push_undo("Clear", gone, None)
            self.messages.show_status(f"Cleared {plural(len(gone), 'photo')}. Undo with Ctrl+Z.", 10000)
        self._layer_asked.clear()
        self._views_asked.clear()
        self._views_failed.clear()
        self._full, self._full_asked = None, None
        self._full_failed.clear()
        self._batch = [0, 0]
        self._update_progress()
        self.undoChanged.emit()
        self.cleared.emit()

    def _push_undo(self, what: str, photos: list[Photo], rows: list[int] | None) -> None:
        self._undo = [*self._undo, (what, photos, rows)][-UNDO_DEPTH:]
        self.undoChanged.emit()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo_text(self) -> str:
        """What Undo would undo: "Undo Remove", "Undo Clear", or "Undo" when nothing."""
        return f"Undo {self._undo[-1][0]}" if self._undo else "Undo"

    def undo(self) -> None:
        """Ctrl+Z: bring back what the last Clear or Remove took out of the gallery (removed photos where they were)."""
        if not self._undo:
            return
        _what, photos, rows = self._undo.pop()
        self.undoChanged.emit()
        self.photos.restore(photos, rows)
        if self.current() is None or rows is not None:
            self.selectWanted.emit(photos[0], False)
        self.messages.show_status(f"Brought back {plural(len(photos), 'photo')}.", 5000)

    def remove(self, photos: Photo | Iterable[Photo]) -> None:
        """Take photos out of the gallery (the files themselves are never touched); Undo puts them back."""
        todo = self.photos.in_order([photos] if isinstance(photos, Photo) else photos)
        if not todo:
            return
        rows = [self.photos.row_of(p) for p in todo]
        for photo in todo:
            if photo.status is Status.QUEUED and self._batch[0]:
                self._batch[0] -= 1  # its answer will be dropped, so the progress bar must not wait for it
        self._update_progress()
        self.photos.remove(todo)
        if self._full is not None and self._full[0] in {p.item_id for p in todo}:
            self._full = None
        self._push_undo("Remove", todo, rows)
        what = todo[0].name if len(todo) == 1 else plural(len(todo), "photo")
        self.messages.show_status(f"Removed {what} from the gallery. Undo with Ctrl+Z.", 6000)

    def retry_scope(self) -> list[Photo]:
        """What Retry classifies again: the failed or stopped photos, and those another model answered, of a
        selection of several, else of the whole gallery (one photo is always selected: it is the photo shown, not
        a choice)."""
        again = (Status.FAILED, Status.STOPPED)
        chosen = self.selection()
        pool = chosen if len(chosen) > 1 else list(self.photos)
        return [p for p in pool if (p.status in again or self.photos.other_model(p) is not None)
                and p.source is not None]  # nothing to read without a source

    def retry(self) -> None:
        """Classify again what ``retry_scope`` names, and say which."""
        chosen = len(self.selection()) > 1
        todo = self.retry_scope()
        others = sum(self.photos.other_model(p) is not None for p in todo)
        for photo in todo:
            self.photos.requeue(photo)
            self._classify(photo)
        self._batch[0] += len(todo)
        self._update_progress()
        if self.current() is not None:
            self.refreshWanted.emit()
        if others:
            model = self.photos.model_names.get(self.photos.model_key or "", "the model in use")
            text = (f"Classifying {plural(len(todo), 'photo')} again with {model} "
                    f"({others} answered by another model).")
        elif todo:
            text = f"Trying {plural(len(todo), 'selected photo' if chosen else 'failed or stopped photo')} again."
        else:
            text = f"Nothing to retry: no failed or stopped photos{' among those selected' if chosen else ''}."
        self.messages.show_status(text, 4000)

    # ---- results out ----
    def export_results(self, path: str, fmt: str | None = None, only: Collection[int] | None = None) -> bool:
        """Write every answer (or those of the photos ``only`` names); the format is the one chosen (else the
        file's extension), which is added if missing. The file gets the permissions the user's umask gives."""
        records = self.photos.records(only)
        suffix = Path(path).suffix.lower().lstrip(".")
        fmt = fmt or (suffix if suffix in ("csv", "json") else "csv")
        if suffix in ("csv", "json") and suffix != fmt:
            path = path[: -len(suffix)] + fmt  # the default name's extension follows the format chosen
        elif suffix != fmt:
            path += f".{fmt}"
        try:
            write_records(path, records, fmt)  # the columns `classify --format csv` writes for these records
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.messages.warning("Export failed", f"Could not write {path}: {reason}")
            return False
        which = " of the photos the gallery shows" if only is not None else ""
        self.messages.show_status(f"Exported {plural(len(records), 'result')}{which} to {path}", 5000)
        return True

    # ---- status ----
    def _update_summary(self) -> None:
        counts = self.photos.counts()
        n = len(self.photos)
        parts = [plural(n, "photo")] if n else []
        for status, word in ((Status.FAILED, "not classified"), (Status.QUEUED, "waiting"), (Status.STOPPED, "stopped")):
            if counts[status]:
                parts.append(f"{counts[status]} {word}")
        self.summaryChanged.emit(" · ".join(parts))

    def _update_progress(self) -> None:
        total, done = self._batch
        running = total > 1 and done < total and self.model_state is ModelState.READY  # nothing runs without a model
        self.progressChanged.emit(done, total if running else 0)
        if done >= total:
            self._batch = [0, 0]
