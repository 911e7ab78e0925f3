"""Find Similar: the gallery ordered by similarity to one photo, with the figure under each thumbnail, and Esc back
to the order before; and what it shares with Find Duplicates…: the worker's memo of the gallery's features and the
status bar's progress (with Cancel) while photos are compared."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QAbstractItemDelegate, QHBoxLayout, QLabel, QPushButton, QWidget

from ..core.similarity import DEFAULT_THRESHOLD, EXACT
from ..worker.jobs.similar import FindSimilarJob, VectorMemo
from ..worker.queue import CANCELLED, Job
from ..worker.results import SimilarOrder
from ..worker.runner import WorkerLike
from .gallery import GalleryDelegate, GalleryModel, GalleryView, Photo
from .gallery_filter import GalleryFilter
from .messages import Messages
from .progress_bar import CancelBar
from .text import plural

SAME_SCENE = 0.45  # below the default threshold, down to here: the same scene (crops, shots further apart)
CHOSEN = "this photo"  # the figure's place under the photo the others are compared with
NOT_COMPARED = "–"  # under a photo that could not be compared (no file, unreadable)


def scale_words(similarity: float) -> str:
    """What a similarity figure means, in the words of the README's scale."""
    if similarity >= EXACT:
        return "exact copy"
    if similarity >= DEFAULT_THRESHOLD:
        return "same shot"
    if similarity >= SAME_SCENE:
        return "same scene"
    return "loosely alike"


def figure_text(similarity: float) -> str:
    """The figure as shown: two decimals, never rounded up to 1.00 unless it is one."""
    shown = f"{similarity:.2f}"
    return "0.99" if shown == "1.00" and similarity < 1.0 else shown


def file_paths(photos: GalleryModel) -> list[str]:
    """The gallery's photo files, in the order added (image data without a file can't be compared)."""
    return [p.source for p in photos if isinstance(p.source, str)]


class CompareBar(CancelBar):
    """The status bar's progress while photos are compared, with its Cancel button; hidden while none is."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Comparing photos", "%v / %m",
                         "Stop comparing photos (Esc); the features computed so far are kept", parent)

    def show_progress(self, done: int, total: int) -> None:
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(done)
        self.setVisible(bool(total))


class Comparing(QObject):
    """What Find Similar and Find Duplicates… share: the memo of the gallery's features the worker keeps (handed to
    every comparing job), and the comparisons under way, with their progress in the status bar."""

    def __init__(self, worker: WorkerLike, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.memo = VectorMemo()
        self.bar = CompareBar()
        self.bar.cancelClicked.connect(self.cancel_all)
        self._running: list[Any] = []  # the comparing jobs not answered yet

    def submit(self, job: Any, on_done: Callable[[Any], None], on_fail: Callable[[str], None],
               on_progress: Callable[[int, int], None] | None = None) -> None:
        """Send a comparing job; its progress shows in the status bar until it answers."""
        self._running.append(job)

        def progress(done: int, total: int) -> None:
            if job in self._running:
                self.bar.show_progress(done, total)
            if on_progress is not None:
                on_progress(done, total)

        self.worker.submit(job, lambda result: self._over(job, on_done, result),
                           lambda message: self._over(job, on_fail, message), progress)

    def _over(self, job: Job[Any], then: Callable[[Any], None], answer: object) -> None:
        if job in self._running:
            self._running.remove(job)
        if not self._running:
            self.bar.show_progress(0, 0)
        then(answer)

    def busy(self) -> bool:
        return bool(self._running)

    def cancel(self, job: Any) -> None:
        if job in self._running:
            self.worker.cancel(job)

    def cancel_all(self) -> None:
        for job in list(self._running):
            self.worker.cancel(job)


class OrderBadge(QWidget):
    """The status bar's reminder while the gallery is ordered by similarity, with the way back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.back = QPushButton("Back", self)
        self.back.setToolTip("The gallery's order before Find Similar (Esc)")
        row.addWidget(self.label)
        row.addWidget(self.back)
        self.hide()

    def say(self, name: str | None) -> None:
        self.label.setText(f"Similar to {name}" if name else "")
        self.setVisible(bool(name))


class FiguresDelegate(GalleryDelegate):
    """The gallery's cells while ordered by similarity: the figure before the answer ("0.93 · tabby 87 %")."""

    def __init__(self, figures: dict[int, float], chosen: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.figures, self.chosen = figures, chosen

    def figure(self, photo: Photo) -> str:
        if photo.item_id == self.chosen:
            return CHOSEN
        value = self.figures.get(photo.item_id)
        return NOT_COMPARED if value is None else figure_text(value)

    def lines(self, photo: Photo, fm: QFontMetrics, width: int) -> list[str]:  # type: ignore[override]
        out = GalleryDelegate.lines(photo, fm, width)
        out[0] = fm.elidedText(f"{self.figure(photo)} · {photo.caption()}", Qt.TextElideMode.ElideRight, width)
        return out


class SimilarOrdering(QObject):
    """Find Similar on a photo: the worker ranks the gallery's photos by similarity to it; the gallery shows them
    in that order, the photo first, each with its figure; ``back`` (Esc) restores the order before."""

    ordered = Signal(object)  # the Photo the gallery is now ordered by similarity to
    back = Signal()  # the order before is back

    def __init__(self, photos: GalleryModel, proxy: GalleryFilter, gallery: GalleryView, comparing: Comparing,
                 messages: Messages, current: Callable[[], Photo | None], select: Callable[[Photo], bool],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.photos, self.proxy, self.gallery, self.comparing = photos, proxy, gallery, comparing
        self.messages, self.current, self.select = messages, current, select
        self.chosen: Photo | None = None  # the photo the gallery is ordered by (None: not ordered by similarity)
        self.figures: dict[int, float] = {}  # photo id -> its similarity to the chosen one
        self._job: FindSimilarJob | None = None
        self._delegate: QAbstractItemDelegate | None = None  # the gallery's own, while ours is in its place
        self.badge = OrderBadge()  # for the status bar
        self.badge.back.clicked.connect(self.go_back)
        proxy.layoutChanged.connect(self._check_still_ordered)
        photos.modelReset.connect(self.end)  # Clear: nothing is ordered by similarity any more

    @property
    def is_ordered(self) -> bool:
        return self.chosen is not None

    def find_similar(self, photo: Photo | None = None) -> FindSimilarJob | None:
        """Edit → Find Similar (and the gallery's context menu): order the gallery by similarity to ``photo`` (the
        selected one by default). The worker compares; the window goes on meanwhile."""
        photo = photo if photo is not None else self.current()
        if photo is None:
            self.messages.show_status("Select a photo first: Find Similar orders the gallery by how alike the "
                                      "others are to it.", 5000)
            return None
        if not isinstance(photo.source, str):
            self.messages.show_status(f"{photo.name} has no file (image data): only photo files can be compared.",
                                      6000)
            return None
        paths = file_paths(self.photos)
        if len(paths) < 2:
            self.messages.show_status("Nothing to compare with: the gallery has no other photo file.", 5000)
            return None
        if self._job is not None:
            self.comparing.cancel(self._job)
        job = self._job = FindSimilarJob(paths, self.comparing.memo, target=photo.source)
        self.comparing.submit(job, lambda order: self._on_ordered(job, photo, order),
                              lambda message: self._on_failed(job, photo, message),
                              lambda done, total: self._on_progress(job, photo, done, total))
        self.messages.show_status(f"Comparing {plural(len(paths), 'photo')} with {photo.name}…", 0)
        return job

    def _on_progress(self, job: FindSimilarJob, photo: Photo, done: int, total: int) -> None:
        if job is self._job:
            self.messages.show_status(f"Comparing photos with {_base(photo.name)}: {done} of {total} "
                                      "(Esc stops)…", 0)

    def _on_ordered(self, job: FindSimilarJob, photo: Photo, order: SimilarOrder) -> None:
        if job is not self._job:
            return  # another Find Similar was asked for since
        self._job = None
        if self.photos.get(photo.item_id) is not photo:
            self.messages.show_status(f"{photo.name} was taken out of the gallery meanwhile.", 5000)
            return
        rank = {photo.item_id: 0}
        figures: dict[int, float] = {}
        for path, similarity in order.ranked:
            other = self.photos.known(path)
            if other is not None and other.item_id not in rank:
                rank[other.item_id] = len(rank)
                figures[other.item_id] = similarity
        self._show(photo, rank, figures)
        text = f"Ordered by similarity to {_base(photo.name)}; Esc goes back."
        if order.failures:
            first = _base(order.failures[0][0])
            text += (f" {plural(len(order.failures), 'photo')} could not be compared ({first}"
                     f"{', …' if len(order.failures) > 1 else ''}): last, with {NOT_COMPARED}.")
        if order.note:
            text += f" {order.note}"
        self.messages.show_status(text, 0)
        self.ordered.emit(photo)

    def _on_failed(self, job: FindSimilarJob, photo: Photo, message: str) -> None:
        if job is not self._job:
            return
        self._job = None
        if message == CANCELLED:
            self.messages.show_status("Stopped comparing photos; the gallery's order is as it was.", 5000)
        else:
            self.messages.show_status(f"Find Similar: {message}", 10000)

    def _show(self, photo: Photo, rank: dict[int, int], figures: dict[int, float]) -> None:
        self.chosen, self.figures = photo, figures
        delegate = FiguresDelegate(figures, photo.item_id, self.gallery)
        if self._delegate is None:
            self._delegate = self.gallery.itemDelegate()
        self.gallery.setItemDelegate(delegate)
        self.proxy.set_rank(rank)
        self.badge.say(_base(photo.name))
        self.select(photo)
        self.gallery.scrollToTop()
        self.gallery.viewport().update()

    def escape(self) -> bool:
        """Esc: stop the comparing under way, else go back to the order before; False when neither applied."""
        if self.comparing.busy():
            self.comparing.cancel_all()
            return True
        if self.is_ordered:
            self.go_back()
            return True
        return False

    def go_back(self) -> None:
        """Esc, or the status bar's Back: the gallery's order before Find Similar."""
        if self.is_ordered:
            self.end()
            self.messages.show_status("Back to the gallery's order.", 4000)

    def end(self) -> None:
        """Back to the order chosen before Find Similar, the figures gone; the selected photo stays in view."""
        if not self.is_ordered:
            return
        self._restore_delegate()
        self.proxy.set_rank(None)
        current = self.gallery.currentIndex()
        if current.isValid():
            self.gallery.scrollTo(current)
        self.back.emit()

    def _restore_delegate(self) -> None:
        self.chosen, self.figures = None, {}
        self.badge.say(None)
        if self._delegate is not None:
            ours = self.gallery.itemDelegate()
            self.gallery.setItemDelegate(self._delegate)
            self._delegate = None
            if ours is not None:
                ours.deleteLater()

    def _check_still_ordered(self) -> None:
        """Another order chosen above the gallery ends Find Similar's (its figures go with it)."""
        if self.is_ordered and self.proxy.rank is None:
            self._restore_delegate()
            self.back.emit()


def _base(name: str) -> str:
    return os.path.basename(name) or name
