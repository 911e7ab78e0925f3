"""The highlight over the window while something is dragged over it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QWidget


class DropOverlay(QWidget):
    """A tinted, outlined layer over its parent with a short line of what a drop will do; mouse events pass through."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.text = "Drop to add"
        parent.installEventFilter(self)
        self.hide()

    def show_over(self, text: str) -> None:
        self.text = text
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()
        self.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        parent = self.parentWidget()
        if event.type() == QEvent.Type.Resize and self.isVisible() and parent is not None:
            self.setGeometry(parent.rect())
        return False

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        tint = QColor(accent)
        tint.setAlpha(40)
        p.fillRect(self.rect(), tint)
        p.setPen(QPen(accent, 3, Qt.PenStyle.DashLine))
        p.drawRect(self.rect().adjusted(2, 2, -3, -3))
        font = p.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        p.setFont(font)
        box = p.fontMetrics().boundingRect(self.text).adjusted(-16, -10, 16, 10)
        box.moveCenter(self.rect().center())
        p.fillRect(box, self.palette().color(QPalette.ColorRole.Window))
        p.setPen(accent)
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, self.text)
