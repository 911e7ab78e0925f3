"""The window's remembered state: restored at start (values checked), saved on close, and kept on the screen."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import QByteArray, QPoint, QRect, QSettings, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow

from ..core.cam import METHODS, method_layers
from ..core.colormap import COLORMAPS
from ..core.devices import RUNTIME_NAMES, runtime_problem
from ..core.kinds import BACKENDS, DEVICE_CHOICES, PRECISIONS
from ..core.records import valid_text
from .controls import LAYERS
from .gallery_filter import SORTS
from .image_view import MODES

if TYPE_CHECKING:
    from .main_window import MainWindow

T = TypeVar("T", bound=str)
DEFAULT_SIZE = (1280, 800)

# Wayland tells an app nothing of the compositor's panels (the available area is the whole output), and the
# frame is drawn by the app itself: room for a panel is kept so the status bar is never under or past the edge.
WAYLAND_PANEL = 48


def read_str(settings: QSettings, key: str, allowed: Collection[T], default: T) -> T:
    """A remembered choice, if it is still one of ``allowed`` (a settings file may be old or edited by hand)."""
    value = settings.value(key, default, type=str)
    for choice in allowed:  # the choice itself, so its type is the choices' type (a Literal)
        if value == choice:
            return choice
    return default


def read_int(settings: QSettings, key: str, low: int, high: int, default: int) -> int:
    """A remembered number, clamped to [low, high]; the default when the file holds no whole number there.

    The stored value is read as it is, never converted by Qt: ``value(key, type=int)`` reads text that is not
    a number as 0 (an invisible heatmap), and raises on NaN, infinity or more digits than a double holds."""
    raw = settings.value(key)
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw):
        digits = raw.strip().lstrip("+-").lstrip("0")
        # thousands of digits would take int() long (or be refused): past any bound, the sign says which one
        value = int(raw) if len(digits) <= 18 else (low if raw.strip().startswith("-") else high)
    else:  # text that is not a whole number in ASCII digits, a float (NaN, 1e309), a list, bytes...
        return default
    return min(high, max(low, value))


_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)

# Remembered choices the window or the worker acts on: (allowed values, the default, what it is called)
CHOICES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "device": (DEVICE_CHOICES, "auto", "device"),
    "backend": (BACKENDS, "auto", "CPU runtime"),
    "precision": (PRECISIONS, "fp32", "precision"),
    "colormap": (tuple(COLORMAPS), "jet", "colour map"),
    "layer": (tuple(LAYERS), "layer4", "heatmap layer"),
    "cam_method": (METHODS, "gradcam", "heatmap method"),
    "view_mode": (tuple(MODES), "overlay", "view"),
    "gallery_sort": (tuple(key for key, _ in SORTS), "added", "gallery order"),
}


def check_choices(settings: QSettings) -> list[str]:
    """Every remembered choice that is not one of its values (a settings file edited by hand, or from another
    version) is removed, so its default holds, and said: one note each, for the user to see once."""
    notes = []
    for key, (allowed, default, what) in CHOICES.items():
        raw = settings.value(key)
        if raw is None or (isinstance(raw, str) and raw in allowed):
            continue
        settings.remove(key)
        shown = valid_text(raw if isinstance(raw, str) else repr(raw))
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        notes.append(f"The {what} in the settings file, {shown!r}, is not one of {', '.join(allowed)}: "
                     f"using {default!r}.")
    backend = settings.value("backend")
    problem = runtime_problem(backend) if isinstance(backend, str) else None
    if problem:  # one this build does not have (the settings file is shared with other installations)
        settings.remove("backend")
        notes.append(f"The CPU runtime in the settings, {RUNTIME_NAMES.get(backend, backend)}, cannot run here: "
                     f"{problem}. Using {RUNTIME_NAMES['auto']}.")
    if notes:
        settings.sync()
    return notes


def _bytes(settings: QSettings, key: str) -> QByteArray | None:
    value = settings.value(key)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def platform() -> str:
    """"xcb", "wayland", "offscreen"…: the display system the window is on."""
    name = QGuiApplication.platformName()
    return "wayland" if name.startswith("wayland") else name


def restore(win: MainWindow, settings: QSettings) -> None:
    geometry = _bytes(settings, "geometry")
    saved_on = settings.value("geometry_platform", "", type=str)
    if geometry is not None and saved_on == platform():
        win.restoreGeometry(geometry)
    elif geometry is not None:
        # Saved under another display system (X11, then Wayland): its frame and position mean something else
        # here (on Wayland the app draws the title bar, and places nothing), so only the size is taken.
        probe = QMainWindow()
        probe.restoreGeometry(geometry)
        size = probe.normalGeometry().size() if probe.normalGeometry().isValid() else probe.size()
        probe.deleteLater()
        win.resize(size if size.isValid() and not size.isEmpty() else QSize(*DEFAULT_SIZE))
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
    offered = [key for key in LAYERS if key in method_layers(method)]
    controls.set_layer(read_str(settings, "layer", offered, offered[0] if offered else "layer4"))
    win.set_cam_method(method)


def save(win: MainWindow, settings: QSettings) -> None:
    settings.setValue("geometry", win.saveGeometry())
    settings.setValue("geometry_platform", platform())
    settings.setValue("splitter", win.splitter.saveState())
    settings.setValue("gallery_sort", win.proxy.sort_key)
    settings.setValue("opacity", win.controls.opacity.value())
    settings.setValue("colormap", win.controls.cmap.currentText())
    settings.setValue("view_mode", win.view.mode)
    settings.setValue("layer", win.controls.layer)
    settings.setValue("cam_method", win.controls.method)
    settings.setValue("device", win.model.device_choice)
    settings.sync()


def fitted(free: QRect, frame: QSize, size: QSize, frame_pos: QPoint, on: str) -> tuple[QSize, QPoint]:
    """The window's size and its frame's place so that frame and all lie in ``free``, the screen's free area.

    ``frame``: what the title bar and borders add to ``size``. On Wayland the free area is the whole output
    (the compositor's panels are not told), so ``WAYLAND_PANEL`` is kept free as well."""
    if on == "wayland":
        free = free.adjusted(0, 0, 0, -WAYLAND_PANEL)
    width = min(size.width(), free.width() - frame.width())
    height = min(size.height(), free.height() - frame.height())
    outer = QSize(width + frame.width(), height + frame.height())
    x = max(free.left(), min(frame_pos.x(), free.left() + free.width() - outer.width()))
    y = max(free.top(), min(frame_pos.y(), free.top() + free.height() - outer.height()))
    return QSize(width, height), QPoint(x, y)


def fit_to_screen(win: QMainWindow) -> None:
    """Never larger than the screen's free area (a saved size from a larger screen, or a HiDPI scale)."""
    if win.isMaximized() or win.isFullScreen():
        return
    screen = win.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    frame = win.frameGeometry().size() - win.geometry().size()  # title bar and borders
    # Not shown yet, or on Wayland, where the title bar Qt draws itself is not counted in frameGeometry (weston:
    # the two are equal): leave room for a title bar.
    if frame.isNull() or frame.height() <= 0:
        frame = QSize(8, win.fontMetrics().height() * 2 + 8)
    size, place = fitted(screen.availableGeometry(), frame, win.size(), win.frameGeometry().topLeft(), platform())
    if size != win.size():
        win.resize(size)
    handle = win.windowHandle()
    if place != win.frameGeometry().topLeft():
        if handle is not None:
            handle.setFramePosition(place)  # the frame's corner: QWidget.move places the inside on some systems
        else:
            win.move(place)
