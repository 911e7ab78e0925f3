"""The photo fitted to the view, with the Grad-CAM heatmap painted over the region the model saw."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..core.colormap import colormap

MODES = ("original", "overlay", "heatmap")


class ImageView(QWidget):
    """Paints a photo (QImage made by the worker) and an 8-bit map through a colour table: no pixel loops here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._photo: QImage | None = None
        self._pixmap: QPixmap | None = None
        self._map: np.ndarray | None = None
        self._map_image: QImage | None = None
        self._crop: tuple | None = None
        self._cmap = "jet"
        self.opacity = 0.5
        self.mode = "overlay"
        self.placeholder = "Drop photos or folders here"

    # ---- state ----
    def set_photo(self, image: QImage | None, crop: tuple | None = None) -> None:
        """``crop``: the region the model saw, as fractions (left, top, right, bottom) of the photo."""
        self._photo, self._crop = image, crop
        self._pixmap = QPixmap.fromImage(image) if image is not None else None
        self.update()

    def set_map(self, indices: np.ndarray | None) -> None:
        self._map = None if indices is None else np.ascontiguousarray(indices, np.uint8)
        self._rebuild_map_image()

    def set_colormap(self, name: str) -> None:
        self._cmap = name
        self._rebuild_map_image()

    def set_opacity(self, value: float) -> None:
        self.opacity = float(value)
        self.update()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mode = mode
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def has_photo(self) -> bool:
        return self._photo is not None

    def _rebuild_map_image(self) -> None:
        if self._map is None:
            self._map_image = None
        else:
            h, w = self._map.shape
            img = QImage(self._map.data, w, h, w, QImage.Format.Format_Indexed8)
            img.setColorTable([0xFF000000 | (int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in colormap(self._cmap)])
            self._map_image = img.copy()  # own the buffer
        self.update()

    # ---- painting ----
    def sizeHint(self) -> QSize:
        return QSize(720, 540)

    def _fit(self) -> QRectF:
        pw, ph = self._photo.width(), self._photo.height()
        scale = min(self.width() / pw, self.height() / ph)
        w, h = pw * scale, ph * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def _paint_on(self, painter: QPainter, target: QRectF, pixmap_or_image) -> QRectF | None:
        """Draw the photo into ``target`` and the heatmap over the crop; return the crop's rectangle if drawn."""
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        if isinstance(pixmap_or_image, QPixmap):
            painter.drawPixmap(target, pixmap_or_image, QRectF(pixmap_or_image.rect()))
        else:
            painter.drawImage(target, pixmap_or_image)
        if self.mode == "original" or self._map_image is None or self._crop is None:
            return None
        left, top, right, bottom = self._crop  # fractions of the photo, whatever resolution is shown
        w, h = target.width(), target.height()
        region = QRectF(target.x() + left * w, target.y() + top * h, (right - left) * w, (bottom - top) * h)
        if self.mode == "heatmap":
            painter.fillRect(target, QColor(0, 0, 0, 190))
            painter.setOpacity(1.0)
        else:
            painter.setOpacity(self.opacity)
        painter.drawImage(region, self._map_image, QRectF(self._map_image.rect()))
        painter.setOpacity(1.0)
        return region

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's naming)
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        if self._pixmap is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.3)
            painter.setFont(font)
            painter.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        region = self._paint_on(painter, self._fit(), self._pixmap)
        if region is not None:  # outline the region the model saw
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 1, Qt.PenStyle.DashLine))
            painter.drawRect(region)

    def render_image(self) -> QImage | None:
        """The current composition at the photo's display resolution (what "Save overlay" writes)."""
        if self._photo is None:
            return None
        out = QImage(self._photo.size(), QImage.Format.Format_RGB32)
        painter = QPainter(out)
        self._paint_on(painter, QRectF(0, 0, self._photo.width(), self._photo.height()), self._photo)
        painter.end()
        return out
