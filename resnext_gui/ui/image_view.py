"""The photo, fitted or zoomed and panned, with the Grad-CAM heatmap painted over the region the model saw."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..core.colormap import colormap

Crop = tuple[float, float, float, float]  # (left, top, right, bottom), fractions of the photo's width and height
MODES = ("original", "overlay", "heatmap")
ZOOM_STEP = 1.25
ZOOM_MAX = 16.0
FOCUS_FRAME = 2  # pixels of the frame painted round the view while it has the keyboard focus


class ImageView(QWidget):
    """Paints a photo (QImage made by the worker) and an 8-bit map through a colour table: no pixel loops here.

    Zoom: ``zoom`` is None when the photo is fitted (never enlarged past its own size), else the scale in
    screen pixels per pixel of the image shown; ``centre`` is the image point shown in the middle of the view.
    The image shown may be a reduced copy of a bigger photo (``full_width``): ``photo_zoom`` is the scale in
    screen pixels per pixel of the photo itself, which Actual Size makes 1 and the zoom percentage shows.
    """

    zoomChanged = Signal()
    doubleClicked = Signal()
    dragOut = Signal()  # a drag started on the photo while it is fitted: the window hands out the overlay

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.zoom: float | None = None
        self.centre = QPointF()
        self._press: QPointF | None = None
        self.setMinimumSize(160, 120)  # with the gallery and the panel, the window fits a 640-px-wide screen (HiDPI scale 2)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._photo: QImage | None = None
        self._pixmap: QPixmap | None = None
        self._map: np.ndarray | None = None
        self._map_image: QImage | None = None
        self._crop: Crop | None = None
        self._full_width = 0  # the photo's own width; 0: the image shown is the photo at its own size
        self._stands_for: QSize | None = None  # the size of the image the one shown stands in for (a thumbnail)
        self._cmap = "jet"
        self.opacity = 0.5
        self.mode = "overlay"
        self.placeholder = "Drop photos or folders here"
        self.placeholder_shown = True  # False while something is dragged over the window: the drop label says it all

    # ---- state ----
    def set_photo(self, image: QImage | None, crop: Crop | None = None, full_width: int = 0,
                  stands_for: QSize | None = None) -> None:
        """``crop``: the region the model saw, as fractions (left, top, right, bottom) of the photo.
        ``full_width``: the photo's own width when ``image`` is a reduced copy of it (0: it is not).
        ``stands_for``: ``image`` is a small stand-in (the thumbnail) for an image of that size, on its way: it is
        fitted as that image will be, so the photo does not jump from a stamp in the middle to the view's size."""
        before = self._photo.size() if self._photo is not None else None
        self._photo, self._crop = image, crop
        self._full_width = full_width
        self._stands_for = stands_for if image is not None and stands_for is not None and not stands_for.isEmpty() else None
        self._pixmap = QPixmap.fromImage(image) if image is not None else None
        if image is None:
            self.fit()
        elif before is not None and before != image.size() and self.zoom is not None:
            # the full view replaced the thumbnail (or the reverse): keep the same place at the same apparent size
            k = image.width() / before.width()
            self.zoom, self.centre = self.zoom / k, self.centre * k
        self.update()

    # ---- zoom and pan ----
    def reduction(self) -> float:
        """The photo's own pixels per pixel of the image shown (1: the photo at its own size; 4: a quarter copy)."""
        if self._photo is None or self._full_width <= self._photo.width():
            return 1.0
        return self._full_width / self._photo.width()

    def photo_zoom(self) -> float | None:
        """Screen pixels per pixel of the photo itself (None: fitted): what the zoom percentage says."""
        return None if self.zoom is None else self.zoom / self.reduction()

    def fit_scale(self) -> float:
        if self._photo is None:
            return 1.0
        if self._stands_for is not None:  # as the image it stands for will be fitted, in this image's pixels
            sw, sh = self._stands_for.width(), self._stands_for.height()
            return min(self.width() / sw, self.height() / sh, 1.0) * sw / self._photo.width()
        pw, ph = self._photo.width(), self._photo.height()
        return min(self.width() / pw, self.height() / ph, 1.0)  # small images at their own size, as before

    def scale(self) -> float:
        return self.fit_scale() if self.zoom is None else self.zoom

    def fit(self) -> None:
        self.zoom = None
        self.update()
        self.zoomChanged.emit()

    def actual_size(self) -> None:
        """One screen pixel per pixel of the photo itself (not of a reduced copy of it)."""
        self.zoom_to(self.reduction())

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        self.zoom_to(self.scale() * factor, at)

    def zoom_to(self, scale: float, at: QPointF | None = None) -> None:
        """Zoom so the photo point under ``at`` (view coordinates; default the middle) stays where it is."""
        if self._photo is None:
            return
        at = QPointF(self.width() / 2, self.height() / 2) if at is None else at
        target = self._fit()
        old = self.scale()
        point = (at - target.topLeft()) / old  # the photo point under ``at``
        scale = min(scale, ZOOM_MAX * self.reduction())  # at most ZOOM_MAX screen pixels per photo pixel
        if scale <= self.fit_scale() * 1.001:
            self.fit()
            return
        self.zoom = scale
        self.centre = point - (at - QPointF(self.width() / 2, self.height() / 2)) / scale
        self._clamp()
        if not self.hasFocus():  # zoomed from the menu, a key or the wheel: the arrow keys pan now, without Tab first
            self.setFocus(Qt.FocusReason.OtherFocusReason)
        self.update()
        self.zoomChanged.emit()

    def pan(self, dx: float, dy: float) -> None:
        if self.zoom is not None:
            self.centre -= QPointF(dx, dy) / self.zoom
            self._clamp()
            self.update()

    def _clamp(self) -> None:
        """Keep the photo on screen: a side smaller than the view is centred, a larger one never shows a gap."""
        if self._photo is None or self.zoom is None:
            return
        pw, ph, s = self._photo.width(), self._photo.height(), self.zoom
        half_w, half_h = self.width() / 2 / s, self.height() / 2 / s
        x = pw / 2 if pw <= 2 * half_w else min(max(self.centre.x(), half_w), pw - half_w)
        y = ph / 2 if ph <= 2 * half_h else min(max(self.centre.y(), half_h), ph - half_h)
        self.centre = QPointF(x, y)

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

    def show_placeholder(self, shown: bool) -> None:
        """Paint the placeholder text or not (not under the drop highlight, whose label would sit across it)."""
        self.placeholder_shown = shown
        self.update()

    def shown_map(self) -> np.ndarray | None:
        """The 8-bit heatmap shown now (colour-map indices), if any."""
        return self._map

    def photo_width(self) -> int:
        """The width in pixels of the image shown (a thumbnail until the full photo is there); 0 without one."""
        return self._photo.width() if self._photo is not None else 0

    def has_photo(self) -> bool:
        return self._photo is not None

    def _rebuild_map_image(self) -> None:
        self._map_image = self._map_to_image(self._map)
        self.update()

    def _map_to_image(self, indices: np.ndarray | None) -> QImage | None:
        if indices is None:
            return None
        indices = np.ascontiguousarray(indices, np.uint8)
        h, w = indices.shape
        img = QImage(indices.data, w, h, w, QImage.Format.Format_Indexed8)
        img.setColorTable([0xFF000000 | (int(r) << 16) | (int(g) << 8) | int(b) for r, g, b in colormap(self._cmap)])
        return img.copy()  # own the buffer

    # ---- painting ----
    def sizeHint(self) -> QSize:
        return QSize(720, 540)

    def _fit(self) -> QRectF:
        """Where the photo is drawn, in view coordinates."""
        if self._photo is None:
            return QRectF()
        pw, ph = self._photo.width(), self._photo.height()
        scale = self.scale()
        w, h = pw * scale, ph * scale
        if self.zoom is None:
            return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)
        return QRectF(self.width() / 2 - self.centre.x() * scale, self.height() / 2 - self.centre.y() * scale, w, h)

    # ---- input ----
    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if steps and self._photo is not None:
            self.zoom_by(ZOOM_STEP ** steps, event.position())
            event.accept()
        else:
            super().wheelEvent(event)

    def event(self, event: QEvent) -> bool:
        if isinstance(event, QNativeGestureEvent) and event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
            self.zoom_by(1 + event.value(), event.position())  # pinch on a touchpad
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = Qt.Key(event.key())
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(ZOOM_STEP)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_by(1 / ZOOM_STEP)
        elif self.zoom is not None and key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = 60
            self.pan({Qt.Key.Key_Left: step, Qt.Key.Key_Right: -step}.get(key, 0),
                     {Qt.Key.Key_Up: step, Qt.Key.Key_Down: -step}.get(key, 0))
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position()
            if self.zoom is not None:
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None:
            return
        delta = event.position() - self._press
        if self.zoom is not None:
            self._press = event.position()
            self.pan(delta.x(), delta.y())
        elif self._photo is not None and delta.manhattanLength() >= 10:
            self._press = None
            self.dragOut.emit()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._press = None
        self.unsetCursor()
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.doubleClicked.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        if self.zoom is not None and self._photo is not None:
            self._clamp()
        super().resizeEvent(event)

    def _paint_on(self, painter: QPainter, target: QRectF, pixmap_or_image: QPixmap | QImage,
                  overlay: tuple[QImage | None, Crop | None] | None = None) -> QRectF | None:
        """Draw the photo into ``target`` and the heatmap over the crop; return the crop's rectangle if drawn.
        The heatmap and crop are the view's own unless ``overlay`` gives others (another photo's, for Save
        Overlay on several)."""
        map_image, crop = (self._map_image, self._crop) if overlay is None else overlay
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        if isinstance(pixmap_or_image, QPixmap):
            painter.drawPixmap(target, pixmap_or_image, QRectF(pixmap_or_image.rect()))
        else:
            painter.drawImage(target, pixmap_or_image)
        if self.mode == "original" or map_image is None or crop is None:
            return None
        left, top, right, bottom = crop  # fractions of the photo, whatever resolution is shown
        w, h = target.width(), target.height()
        region = QRectF(target.x() + left * w, target.y() + top * h, (right - left) * w, (bottom - top) * h)
        if self.mode == "heatmap":
            painter.fillRect(target, QColor(0, 0, 0, 190))
            painter.setOpacity(1.0)
        else:
            painter.setOpacity(self.opacity)
        painter.drawImage(region, map_image, QRectF(map_image.rect()))
        painter.setOpacity(1.0)
        return region

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's naming)
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        if self._pixmap is None:
            if not self.placeholder_shown:
                self._paint_focus(painter)
                return
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.3)
            painter.setFont(font)
            painter.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            self._paint_focus(painter)
            return
        region = self._paint_on(painter, self._fit(), self._pixmap)
        if region is not None:  # outline the region the model saw
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 1, Qt.PenStyle.DashLine))
            painter.drawRect(region)
        self._paint_focus(painter)

    def _paint_focus(self, painter: QPainter) -> None:
        """A frame round the view while it has the keyboard (arrows pan, +/- zoom), over the photo's edge if need be."""
        if self.hasFocus():
            paint_focus_frame(painter, QRectF(self.rect()), self.palette())

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802
        self.update()
        super().focusOutEvent(event)

    def compose(self, photo: QImage, indices: np.ndarray | None, crop: Crop | None) -> QImage:
        """Another photo drawn as this view draws its own (mode, colour map, opacity), with its heatmap ``indices``
        over its ``crop``: what Save Overlay writes for each of several photos."""
        out = QImage(photo.size(), QImage.Format.Format_RGB32)
        painter = QPainter(out)
        self._paint_on(painter, QRectF(0, 0, photo.width(), photo.height()), photo, (self._map_to_image(indices), crop))
        painter.end()
        return out

    def render_image(self, photo: QImage | None = None) -> QImage | None:
        """The current composition at the resolution of the image shown, or drawn on ``photo`` (the same photo
        at another resolution: Save Overlay's full size)."""
        photo = photo if photo is not None else self._photo
        if photo is None or self._photo is None:
            return None
        out = QImage(photo.size(), QImage.Format.Format_RGB32)
        painter = QPainter(out)
        self._paint_on(painter, QRectF(0, 0, photo.width(), photo.height()), photo)
        painter.end()
        return out


def paint_focus_frame(painter: QPainter, rect: QRectF, palette: QPalette) -> None:
    """The frame a pane (the photo view, the gallery) shows round itself while it has the keyboard."""
    painter.save()
    painter.setOpacity(1.0)
    painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), FOCUS_FRAME))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    half = FOCUS_FRAME / 2
    painter.drawRect(rect.adjusted(half, half, -half, -half))
    painter.restore()
