"""The heatmap's colour legend: the colour map from low to high attention, and the overlay's opacity."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..core.colormap import colormap


class HeatmapLegend(QWidget):
    """A gradient bar labelled "low" and "high", and the opacity the overlay is drawn with."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cmap = "jet"
        self.opacity = 0.5
        self.mode = "overlay"
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setToolTip("Where the network looked: from low (left) to high (right) attention")
        self._update_name()

    def set_colormap(self, name: str) -> None:
        self.cmap = name
        self.update()

    def set_opacity(self, value: float) -> None:
        self.opacity = value
        self._update_name()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._update_name()

    def caption(self) -> str:
        if self.mode == "original":
            return "heatmap hidden"
        return "heatmap only" if self.mode == "heatmap" else f"opacity {round(self.opacity * 100)}%"

    def _update_name(self) -> None:
        self.setAccessibleName(f"Heatmap legend, low to high; {self.caption()}")
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(200, self.fontMetrics().height() + 20)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        fm = self.fontMetrics()
        pal = self.palette()
        bar = QRectF(0, 2, self.width(), 12)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        table = colormap(self.cmap)
        for i in range(0, 256, 15):
            r, g, b = (int(v) for v in table[i])
            grad.setColorAt(i / 255, QColor(r, g, b))
        r, g, b = (int(v) for v in table[255])
        grad.setColorAt(1.0, QColor(r, g, b))
        if self.mode == "original":
            p.setOpacity(0.35)
        p.fillRect(bar, grad)
        p.setOpacity(1.0)
        p.setPen(pal.color(QPalette.ColorRole.WindowText))
        text = QRectF(0, bar.bottom() + 3, self.width(), fm.height())
        p.drawText(text, Qt.AlignmentFlag.AlignLeft, "low")
        p.drawText(text, Qt.AlignmentFlag.AlignHCenter, self.caption())
        p.drawText(text, Qt.AlignmentFlag.AlignRight, "high")
