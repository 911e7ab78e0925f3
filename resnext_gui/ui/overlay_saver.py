"""Save Overlay on several photos: each one's overlay written into a folder at its full size, one photo at a time."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..worker.jobs.photo import SaveImageJob
from .controller import BatchController
from .gallery import GalleryModel, Photo, Status
from .image_view import ImageView
from .messages import Messages
from .photo_export import overlay_metadata, overlay_name
from .text import plural


class OverlaySaver(QObject):
    """Writes ``photos``' overlays (their top class, drawn as the view draws: mode, colour map, opacity) into
    ``folder``. Every pixel of each photo is decoded by the worker in turn (the controller holds one at a time);
    one that can't be read whole is written from its display copy. Files already there are not overwritten. The
    worker encodes and writes each file (``job_done`` hears how that went), as it does for one photo."""

    finished = Signal(int, int)  # written, not written

    def __init__(self, photos: list[Photo], folder: str, gallery: GalleryModel, controller: BatchController,
                 view: ImageView, messages: Messages, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folder, self.gallery, self.controller, self.view, self.messages = Path(folder), gallery, controller, view, messages
        self.todo = [p for p in photos if p.status is Status.DONE and p.result is not None and p.result.ok]
        self.skipped = len(photos) - len(self.todo)  # not classified: no overlay to write
        self.written: list[str] = []
        self.reserved: set[str] = set()  # names handed to the worker, written or not yet
        self.pending: list[SaveImageJob] = []  # the worker's writes not answered yet
        self.failed = 0
        self.done = False
        controller.updated.connect(self._on_updated)

    def start(self) -> None:
        self.messages.show_status(f"Saving the overlays of {plural(len(self.todo), 'photo')} into {self.folder}…", 10000)
        self._next()

    def _next(self) -> None:
        while self.todo:
            photo = self.todo[0]
            if self.gallery.get(photo.item_id) is None:  # removed meanwhile
                self.todo.pop(0)
                self.failed += 1
                continue
            if not (self.controller.want_full(photo) or self.controller.full_failed(photo)):
                return  # asked for: ``updated`` brings it
            self.todo.pop(0)
            self._write(photo)
        if not self.pending:
            self._finish()

    def _on_updated(self, photo: Photo) -> None:
        if self.todo and photo is self.todo[0] and not self.done:
            if self.controller.full_view(photo) is not None or self.controller.full_failed(photo):
                self._next()

    def _write(self, photo: Photo) -> None:
        res = photo.result
        assert res is not None
        image = self.controller.full_view(photo)
        if image is None:
            image = self.gallery.display(photo.item_id)
        if image is None:
            self.failed += 1
            return
        indices = res.maps[0] if res.maps is not None else None
        composed = self.view.compose(image, indices, res.crop)
        path = self._free_path(overlay_name(photo, res.top[0].label, res.layer, res.method))
        self.reserved.add(str(path))
        job = SaveImageJob(str(path), composed, overlay_metadata(photo, 1, res.layer, res.method))
        self.pending.append(job)
        self.controller.worker.submit(job, lambda written: self._job_done(job, written),
                                      lambda message: self._job_done(job, None, message))

    def _job_done(self, job: SaveImageJob, path: str | None, message: str = "") -> None:
        """The worker's answer for one file: ``path`` written, or None with the reason (said in the status bar)."""
        self.pending = [j for j in self.pending if j is not job]
        if path is None:
            self.failed += 1
            self.messages.show_status(message, 8000)
        else:
            self.written.append(path)
        if not self.todo and not self.pending:
            self._finish()

    def _free_path(self, name: str) -> Path:
        path = self.folder / name
        n = 2
        while path.exists() or str(path) in self.reserved:
            stem = name[: -len(".png")]
            path = self.folder / f"{stem}-{n}.png"
            n += 1
        return path

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.controller.updated.disconnect(self._on_updated)
        missed = self.failed + self.skipped
        text = f"Saved {plural(len(self.written), 'overlay')} into {self.folder}"
        if missed:
            text += f"; {plural(missed, 'photo')} not saved (not classified, or unreadable)"
        self.messages.show_status(text + ".", 8000)
        self.finished.emit(len(self.written), missed)
