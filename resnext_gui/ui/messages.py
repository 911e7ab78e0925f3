"""One channel for what the window tells the user (status-bar text, dialogs), and where every worker answer goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from ..worker import Job, Worker

Handler = Callable[[Any, Any], None]  # (job, result or message)


class Messages(QObject):
    """Status text and dialogs for every piece of the window; and the worker's answers, routed by job kind.

    Pieces say which kinds of job they handle (``route``); a failure no piece handles is still shown, in a
    dialog, so no failure is ever lost. The status bar listens to ``status``.
    """

    status = Signal(str, int)  # text, how long to show it (ms)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.last_message: QMessageBox | None = None
        self._finished: dict[type, Handler] = {}
        self._failed: dict[type, Handler] = {}
        self._progress: dict[type, Callable[[Any, int, int], None]] = {}

    # ---- to the user ----
    def show_status(self, text: str, ms: int = 5000) -> None:
        self.status.emit(text, ms)

    def dialog(self, title: str, text: str, icon: QMessageBox.Icon = QMessageBox.Icon.Information) -> QMessageBox:
        """A window-modal box that shows ``text`` literally (names and paths are never read as HTML)."""
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self.parent_widget)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.last_message = box
        return box

    def warning(self, title: str, text: str) -> QMessageBox:
        return self.dialog(title, text, QMessageBox.Icon.Warning)

    # ---- from the worker ----
    def listen(self, worker: Worker) -> None:
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.progress.connect(self._on_progress)

    def route(self, kind: type[Job], finished: Handler, failed: Handler,
              progress: Callable[[Any, int, int], None] | None = None) -> None:
        """Answers to jobs of ``kind`` go to these handlers: (job, result), (job, message), (job, done, total)."""
        self._finished[kind] = finished
        self._failed[kind] = failed
        if progress is not None:
            self._progress[kind] = progress

    def _on_finished(self, job: Job, result: object) -> None:
        handler = self._finished.get(type(job))
        if handler is not None:
            handler(job, result)

    def _on_progress(self, job: Job, done: int, total: int) -> None:
        handler = self._progress.get(type(job))
        if handler is not None:
            handler(job, done, total)

    def _on_failed(self, job: Job, message: str) -> None:
        handler = self._failed.get(type(job))
        if handler is not None:
            handler(job, message)
        else:
            self.warning("Something went wrong", message)
