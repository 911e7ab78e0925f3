"""Remembered window state (ui/window_settings.py): values read back checked and clamped, whatever the file says."""

import pytest
from PySide6.QtCore import QSettings

from resnext_gui.ui.window_settings import read_int, read_str


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
    from tests.ui.fakes import FakeWorker

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


def test_the_window_fits_a_screen_640_pixels_wide(qtbot, tmp_path):
    """A 1280-px screen at a HiDPI scale of 2 is 640 px wide to the window: at its narrowest, frame and all, it
    fits (wider, fit_to_screen could not make it fit, and the panel with the top 5 ran off the screen's edge)."""
    from resnext_gui.ui.main_window import MainWindow
    from tests.ui.fakes import FakeWorker

    win = MainWindow(device="cpu", settings=QSettings(str(tmp_path / "w.ini"), QSettings.Format.IniFormat), worker=FakeWorker())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert win.minimumSizeHint().width() <= 640 - 2 * 8  # room for a window manager's borders
    win.close()
