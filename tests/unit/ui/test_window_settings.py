"""Remembered window state (ui/window_settings.py): values read back checked and clamped, whatever the file says."""

import pytest
from PySide6.QtCore import QSettings

from resnext_gui.ui.window_settings import check_choices, read_int, read_str


@pytest.fixture
def ini(tmp_path):
    return QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)


@pytest.mark.parametrize("stored, expected", [(80, 80), ("35", 35), (250, 100), (-4, 0), ("lots", 50), (None, 50)])
def test_numbers_are_clamped_and_nonsense_is_the_default(ini, stored, expected):
    if stored is not None:
        ini.setValue("opacity", stored)
    assert read_int(ini, "opacity", 0, 100, 50) == expected


def test_choices_must_still_be_choices(ini):
    ini.setValue("colormap", "turbo")
    assert read_str(ini, "colormap", ("jet", "turbo"), "jet") == "turbo"
    ini.setValue("colormap", "plaid")
    assert read_str(ini, "colormap", ("jet", "turbo"), "jet") == "jet"
    assert read_str(ini, "view_mode", ("overlay",), "overlay") == "overlay"


def test_a_window_restores_what_it_saved_and_refuses_an_edited_file(qtbot, tmp_path):
    from resnext_gui.ui.main_window import MainWindow
    from tests.support.ui_fakes import FakeWorker

    path = str(tmp_path / "w.ini")
    win = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(win)
    win.controls.opacity.setValue(80)
    win.controls.set_colormap("hot")
    win.set_mode("heatmap")
    win.controls.layer_box.setCurrentIndex(1)
    win.close()
    again = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(again)
    assert (again.controls.opacity.value(), again.controls.cmap.currentText(), again.view.mode) == (80, "hot", "heatmap")
    assert again.controls.layer == "layer3" and again.controller.layer == "layer3"
    again.close()
    edited = QSettings(path, QSettings.Format.IniFormat)
    edited.setValue("opacity", "very")
    edited.setValue("view_mode", "sideways")
    edited.setValue("layer", "layer9")
    edited.sync()
    third = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(third)
    assert (third.controls.opacity.value(), third.view.mode, third.controller.layer) == (50, "overlay", "layer4")
    third.close()


# ---- a settings file written by hand: whatever it holds, the window starts, and says what it set aside ----
def hand_written(tmp_path, lines):
    path = tmp_path / "hand.ini"
    path.write_text("[General]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return QSettings(str(path), QSettings.Format.IniFormat)


@pytest.mark.parametrize("text, expected", [
    ("99999999999999999999", 100), ("-2147483649", 0), ("1e309", 50), ("nan", 50), ("-inf", 50),
    ("@Variant(\\0\\0\\0\\x87\\x7f\\xf8\\0\\0)", 50),  # a float NaN stored as Qt writes one
    ("9" * 5000, 100), ("-" + "9" * 5000, 0), ("\\x663", 50),  # more digits than int() takes; an Arabic-Indic 3
    ("1, 2", 50), ("@ByteArray(12)", 50), ("0x10", 50), (" 35 ", 35), ("+7", 7),
])
def test_numbers_from_a_hand_written_file_are_clamped_or_the_default(tmp_path, text, expected):
    assert read_int(hand_written(tmp_path, [f"opacity={text}"]), "opacity", 0, 100, 50) == expected


def test_unknown_choices_fall_back_to_the_defaults_with_a_note_shown_once(qtbot, tmp_path):
    from resnext_gui.ui.main_window import MainWindow
    from tests.support.ui_fakes import FakeWorker

    lines = ["backend=evil", "precision=evil", "layer=layer9", "colormap=plaid", "device=quantum", "cam_method=magic",
             "opacity=99999999999999999999", "view_mode=overlay"]
    settings = hand_written(tmp_path, lines)
    assert check_choices(settings) and not check_choices(settings)  # set aside once: the file holds defaults now
    for key in ("backend", "precision", "layer", "colormap", "device", "cam_method"):
        assert settings.value(key) is None
    settings = hand_written(tmp_path, lines)
    win = MainWindow(settings=settings, worker=FakeWorker())
    qtbot.addWidget(win)
    box = win.messages.last_message
    assert box is not None and box.windowTitle() == "Settings reset"
    text = box.text()
    for what, value, default in (("CPU runtime", "evil", "auto"), ("precision", "evil", "fp32"),
                                 ("heatmap layer", "layer9", "layer4"), ("colour map", "plaid", "jet"),
                                 ("heatmap method", "magic", "gradcam"),
                                 ("device", "quantum", "auto")):
        assert f"The {what} in the settings file, {value!r}, is not one of" in text and f"using {default!r}" in text
    assert "view" not in text.replace("preview", "")  # a valid value is no news
    assert (win.controls.opacity.value(), win.controls.cmap.currentText(), win.controller.layer) == (100, "jet", "layer4")
    assert win.model.device_choice == "auto"
    box.close()
    win.close()
    again = MainWindow(settings=QSettings(str(tmp_path / "hand.ini"), QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(again)
    assert again.messages.last_message is None  # said once
    again.close()


def test_the_window_fits_a_screen_640_pixels_wide(qtbot, tmp_path):
    """A 1280-px screen at a HiDPI scale of 2 is 640 px wide to the window: at its narrowest, frame and all, it
    fits (wider, fit_to_screen could not make it fit, and the panel with the top 5 ran off the screen's edge)."""
    from resnext_gui.ui.main_window import MainWindow
    from tests.support.ui_fakes import FakeWorker

    win = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "w.ini"), QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert win.minimumSizeHint().width() <= 640 - 2 * 8  # room for a window manager's borders
    win.close()


def test_the_frame_and_a_wayland_panel_are_kept_inside_the_screen():
    """A 1000-px-high screen, a 963-px window saved under X11 (where the window manager drew a 37-px title bar):
    on Wayland the app draws that bar itself and the compositor's panel is not told, so both are left room for."""
    from PySide6.QtCore import QPoint, QRect, QSize

    from resnext_gui.ui.window_settings import WAYLAND_PANEL, fitted

    free, frame = QRect(0, 0, 1280, 1000), QSize(0, 37)
    size, place = fitted(free, frame, QSize(1280, 963), QPoint(0, 0), "wayland")
    assert size == QSize(1280, 1000 - WAYLAND_PANEL - 37) and place == QPoint(0, 0)
    assert fitted(free, frame, QSize(1280, 963), QPoint(0, 0), "xcb") == (QSize(1280, 963), QPoint(0, 0))
    size, place = fitted(QRect(0, 27, 1280, 973), frame, QSize(1000, 960), QPoint(200, 100), "xcb")
    assert size == QSize(1000, 973 - 37) and place == QPoint(200, 27)  # moved up so the bottom is on the screen
    assert place.y() + size.height() + frame.height() <= 27 + 973


def test_a_geometry_saved_under_another_display_system_gives_only_its_size(qtbot, tmp_path):
    from PySide6.QtCore import QSize

    from resnext_gui.ui.main_window import MainWindow
    from resnext_gui.ui.window_settings import platform
    from tests.support.ui_fakes import FakeWorker

    path = str(tmp_path / "w.ini")
    win = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(win)
    win.resize(700, 500)
    win.move(40, 30)
    win.close()
    assert QSettings(path, QSettings.Format.IniFormat).value("geometry_platform") == platform()
    same = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(same)
    assert same.size() == QSize(700, 500) and same.pos() == win.pos()
    other = QSettings(path, QSettings.Format.IniFormat)
    other.setValue("geometry_platform", "xcb" if platform() != "xcb" else "wayland")
    other.sync()
    moved = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(moved)
    assert moved.size() == QSize(700, 500) and moved.pos() != win.pos()


@pytest.mark.parametrize("saved", [None, [420, 500, 420]])
def test_at_800_by_600_the_photo_gets_the_most_room(qtbot, tmp_path, saved):
    """A window 800 pixels wide (or a layout saved on a larger screen): the gallery and the controls give up width,
    down to their minimum, so the photo is the widest pane and has at least half of the room."""
    from resnext_gui.ui.main_window import MainWindow
    from resnext_gui.ui.splitter import minimum_width
    from tests.support.ui_fakes import FakeWorker

    path = str(tmp_path / "w.ini")
    if saved is not None:
        big = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
        qtbot.addWidget(big)
        big.splitter.setSizes(saved)
        big.close()  # saved: wide side panes
    win = MainWindow(device="cpu", settings=QSettings(path, QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(win)
    win.resize(800, 600)
    win.show()
    qtbot.waitExposed(win)
    gallery, photo, controls = win.splitter.sizes()
    assert photo > gallery and photo > controls, win.splitter.sizes()
    assert photo >= (gallery + photo + controls) // 2 or (
        gallery == minimum_width(win.splitter.widget(0)) and controls == minimum_width(win.splitter.widget(2)))
    assert win.view.width() == photo and win.controls.width() == controls
    side = win.controls.widget()
    assert side.width() >= side.minimumSizeHint().width()  # the panel's rows are never cut at the right
    win.resize(1400, 800)  # grown again: the gallery gets back the width it would like
    qtbot.waitUntil(lambda: sum(win.splitter.sizes()) > 1200)
    gallery = win.splitter.sizes()[0]
    assert gallery >= win.splitter.widget(0).sizeHint().width() > minimum_width(win.splitter.widget(0)), \
        win.splitter.sizes()
    win.close()


def test_the_photo_pane_takes_from_the_side_panes_only_what_they_have_above_their_minimum():
    from resnext_gui.ui.splitter import photo_first

    assert photo_first([300, 216, 260], [168, 160, 229]) == [168, 379, 229]  # both down to their minimum
    assert photo_first([300, 700, 260], [168, 160, 229]) == [300, 700, 260]  # room enough: the user's sizes stay
    assert photo_first([300, 400, 300], [100, 160, 100]) == [250, 500, 250]  # half, from each by what it can give
    # squeezed in a small window, then the window grown again (Qt gives the new width to the photo): the side
    # panes get back the width they would like, from what the photo has above its half
    assert photo_first([168, 857, 255], [168, 160, 229], preferred=[300, 160, 260]) == [300, 720, 260]
    assert photo_first([168, 500, 255], [168, 160, 229], preferred=[300, 160, 260]) == [206, 462, 255]
