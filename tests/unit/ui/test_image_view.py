"""The image view (ui/image_view.py) on its own: fit, zoom about the cursor, pan within the photo, the map shown."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from resnext_gui.ui.image_view import ImageView


def test_zoom_fit_actual_size_and_pan(qtbot):
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    small = QImage(400, 300, QImage.Format.Format_RGB32)
    view.set_photo(small)
    assert view.scale() == 1.0  # a small photo at its own size, not blown up
    big = QImage(3200, 2400, QImage.Format.Format_RGB32)
    view.set_photo(big)
    assert view.scale() == pytest.approx(0.25) and view.zoom is None
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.zoom == pytest.approx(0.3125)
    view.actual_size()
    assert view.zoom == 1.0
    view.pan(-10_000, 0)  # never past the photo's edge
    assert view.centre.x() == pytest.approx(3200 - 400)
    view.fit()
    assert view.zoom is None


    at = QPointF(100, 100)
    wheel = QWheelEvent(at, view.mapToGlobal(at), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, wheel)
    assert view.zoom == pytest.approx(0.25 * 1.25 ** 2)
    rect = view._fit()
    assert (at.x() - rect.x()) / view.zoom == pytest.approx(400, abs=1)  # the point under the cursor stays put


def test_the_map_shown_and_the_rendered_overlay_follow_mode_and_map(qtbot):
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    photo = QImage(200, 100, QImage.Format.Format_RGB888)
    photo.fill(Qt.GlobalColor.gray)
    view.set_photo(photo, (0.0, 0.0, 1.0, 1.0))  # the model saw all of it
    assert view.shown_map() is None and view.photo_width() == 200
    heat = np.full((224, 224), 255, np.uint8)
    view.set_map(heat)
    assert np.array_equal(view.shown_map(), heat)
    view.set_mode("original")
    plain = view.render_image()
    view.set_mode("heatmap")
    hot = view.render_image()
    assert (plain.width(), plain.height()) == (200, 100) == (hot.width(), hot.height())
    assert plain.pixelColor(100, 50) != hot.pixelColor(100, 50)  # the map's colour, not the photo's grey
    with pytest.raises(ValueError):
        view.set_mode("sideways")
    view.set_photo(None)
    assert not view.has_photo() and view.photo_width() == 0


def test_a_reduced_copy_is_zoomed_in_the_photo_s_own_pixels(qtbot):
    """A 4247×2825 photo shown from its 1062×707 copy: Actual Size is 2825 screen pixels tall, and says 100 %."""
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.set_photo(QImage(1062, 707, QImage.Format.Format_RGB32), full_width=4247)
    assert view.zoom is None and view.photo_zoom() is None and view.reduction() == pytest.approx(4247 / 1062)
    view.actual_size()
    assert view.photo_zoom() == pytest.approx(1.0) and view._fit().height() == pytest.approx(707 * 4247 / 1062)
    view.zoom_by(1.25)
    assert view.photo_zoom() == pytest.approx(1.25)
    view.zoom_to(1e6)
    assert view.photo_zoom() == pytest.approx(16.0)  # the limit is of the photo's pixels, not the copy's
    view.resize(2000, 1500)
    view.fit()  # fitted, the image shown is never enlarged (the look is the same as for any image)
    assert view.scale() == 1.0


def test_zooming_gives_the_view_the_keyboard_so_arrows_pan_and_a_frame_shows_it(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QListWidget, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    layout = QHBoxLayout(window)
    gallery, view = QListWidget(), ImageView()
    layout.addWidget(gallery)
    layout.addWidget(view)
    window.resize(900, 500)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitActive(window)
    gallery.setFocus()
    qtbot.waitUntil(gallery.hasFocus)
    image = QImage(2000, 1500, QImage.Format.Format_RGB32)
    image.fill(0xFF808080)
    view.set_photo(image)
    unfocused = view.grab().toImage()
    view.zoom_by(4)  # as Ctrl++ from the menu does, with the gallery holding the keyboard
    assert view.hasFocus()
    before = QPointF(view.centre)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.centre.x() > before.x() and view.centre.y() == before.y()
    view.fit()
    focused = view.grab().toImage()
    corner = [(x, 0) for x in range(3, view.width() - 3, 7)] + [(0, y) for y in range(3, view.height() - 3, 7)]
    assert view.hasFocus()
    assert [(x, y) for x, y in corner if focused.pixel(x, y) == unfocused.pixel(x, y)] == []  # the frame round the view
    gallery.setFocus()
    qtbot.waitUntil(lambda: not view.hasFocus())
    assert view.grab().toImage() == unfocused


def test_the_placeholder_can_be_kept_out_of_the_way_of_the_drop_label(qtbot):
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.set_placeholder("")
    blank = view.grab().toImage()
    view.set_placeholder("Drop photos or folders here\n(or File → Open, Ctrl+O; paste with Ctrl+V)")
    assert view.grab().toImage() != blank
    view.show_placeholder(False)  # while something is dragged over the window
    assert view.grab().toImage() == blank
    view.show_placeholder(True)
    assert view.grab().toImage() != blank
