"""A status-bar progress for long work on the worker: a label, a bar and a Cancel button, hidden while none runs."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


class CancelBar(QWidget):
    """``label`` beside a bar shown with ``bar_format`` and a Cancel button whose ``tooltip`` says what it stops;
    ``cancelClicked`` when pressed. Hidden until shown."""

    cancelClicked = Signal()

    def __init__(self, label: str, bar_format: str, tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(label)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.bar.setFormat(bar_format)
        self.bar.setAccessibleName(f"{label}: progress")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip(tooltip)
        row.addWidget(self.label)
        row.addWidget(self.bar)
        row.addWidget(self.cancel)
        self.cancel.clicked.connect(self.cancelClicked)
        self.hide()
