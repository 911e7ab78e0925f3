"""One channel for what the window tells the user: status-bar text and dialogs (and any worker failure nobody else heard)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from ..worker.queue import Job
from ..worker.runner import WorkerLike


class Messages(QObject):
    """Status text and dialogs for every piece of the window. The status bar listens to ``status``; a worker
    failure whose job was sent without an ``on_fail`` is shown in a dialog, so no failure is ever lost."""

    status = Signal(str, int)  # text, how long to show it (ms)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.last_message: QMessageBox | None = None

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

    def listen(self, worker: WorkerLike) -> None:
        """A failure nobody asked to hear is still shown."""
        worker.unheard.connect(self._unheard)

    def _unheard(self, job: Job[object], message: str) -> None:
        self.warning("Something went wrong", message)
