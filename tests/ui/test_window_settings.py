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
