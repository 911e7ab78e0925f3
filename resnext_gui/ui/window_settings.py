"""The window's remembered state: restored at start (values checked), saved on close, and kept on the screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow

from ..core.cam import METHODS, method_layers
from ..core.colormap import COLORMAPS
from .gallery_filter import SORTS
from .image_view import MODES

if TYPE_CHECKING:
    from .main_window import MainWindow

DEFAULT_SIZE = (1280, 800)


def read_str(settings: QSettings, key: str, allowed: object, default: str) -> str:
    """A remembered choice, if it is still one of ``allowed`` (a settings file may be old or edited by hand)."""
    value = settings.value(key, default, type=str)
    return value if isinstance(value, str) and value in allowed else default  # type: ignore[operator]


def read_int(settings: QSettings, key: str, low: int, high: int, default: int) -> int:
    """A remembered number, clamped to [low, high]; the default when the file holds no number there.

    ``value(key, type=int)`` alone reads text that is not a number as 0 (an invisible heatmap), so the
    stored text is looked at first."""
    raw = settings.value(key)
    if raw is None or (isinstance(raw, str) and not raw.strip().lstrip("+-").isdigit()):
        return default
    value = settings.value(key, default, type=int)
    return min(high, max(low, value)) if isinstance(value, int) else default


def _bytes(settings: QSettings, key: str) -> QByteArray | None:
    value = settings.value(key)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def restore(win: MainWindow, settings: QSettings) -> None:
    geometry = _bytes(settings, "geometry")
    if geometry is not None:
        win.restoreGeometry(geometry)
    else:
        win.resize(*DEFAULT_SIZE)
    fit_to_screen(win)
    splitter = _bytes(settings, "splitter")
    if splitter is not None:
        win.splitter.restoreState(splitter)
    win.gallery_bar.set_sort(read_str(settings, "gallery_sort", dict(SORTS), "added"))
    controls = win.controls
    controls.opacity.setValue(read_int(settings, "opacity", 0, 100, 50))
    controls.set_colormap(read_str(settings, "colormap", COLORMAPS, "jet"))
    win.set_mode(read_str(settings, "view_mode", MODES, "overlay"))
    method = read_str(settings, "cam_method", METHODS, "gradcam")
    controls.set_method(method)
    offered = [key for key in controls.layer_keys() if key in method_layers(method)]
    controls.set_layer(read_str(settings, "layer", offered, offered[0] if offered else "layer4"))
    win.set_cam_method(method)


def save(win: MainWindow, settings: QSettings) -> None:
    settings.setValue("geometry", win.saveGeometry())
    settings.setValue("splitter", win.splitter.saveState())
    settings.setValue("gallery_sort", win.proxy.sort_key)
    settings.setValue("opacity", win.controls.opacity.value())
    settings.setValue("colormap", win.controls.cmap.currentText())
    settings.setValue("view_mode", win.view.mode)
    settings.setValue("layer", win.controls.layer)
    settings.setValue("cam_method", win.controls.method)
    settings.setValue("device", win.model.device_choice)
    settings.sync()


def fit_to_screen(win: QMainWindow) -> None:
    """Never larger than the screen's free area (a saved size from a larger screen, or a HiDPI scale)."""
    if win.isMaximized() or win.isFullScreen():
        return
    screen = win.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    free = screen.availableGeometry()
    frame = win.frameGeometry().size() - win.geometry().size()  # title bar and borders
    if frame.isNull() or frame.height() <= 0:  # not shown yet: leave room for a title bar
        frame = QSize(8, win.fontMetrics().height() * 2 + 8)
    width = min(win.width(), free.width() - frame.width())
    height = min(win.height(), free.height() - frame.height())
    if (width, height) != (win.width(), win.height()):
        win.resize(width, height)
    if not free.contains(win.frameGeometry()):
        win.move(max(free.left(), min(win.x(), free.right() - win.frameGeometry().width())),
                 max(free.top(), min(win.y(), free.bottom() - win.frameGeometry().height())))
