"""Hostile input in the window: markup in names, labels and paths stays text; downloads and devices never get stuck."""

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QWidget

from tests.support.helpers import WeightsServer
from tests.support.qt_fixtures import MODEL_TIMEOUT, drop_and_list, open_window, wait_all_done
from tests.support.ui_fakes import FakeFactory

MARKUP = "<img src=/dev/zero><b>espresso 99%</b>"
MARKUP_NAME = "<img src=&#47;dev&#47;zero><b>espresso 99%"  # the same, as a file name can carry it (no "/")


class MarkupFactory(FakeFactory):
    """Every class label carries markup, as a hostile checkpoint's labels could."""

    def __call__(self, weights, device, **options):
        clf = super().__call__(weights, device, **options)
        clf.labels = [f"{MARKUP} {i}" for i in range(1000)]
        return clf


def test_names_labels_and_paths_are_shown_as_plain_text_everywhere(qtbot, settings, tmp_path):
    photo = tmp_path / f"{MARKUP_NAME}.png"
    Image.new("RGB", (64, 48), (200, 100, 40)).save(photo)
    weights = tmp_path / f"{MARKUP_NAME}.pth"
    win = open_window(qtbot, settings, weights, factory=MarkupFactory())
    try:
        drop_and_list(qtbot, win, [photo])
        wait_all_done(qtbot, win)
        win.select(win.photos.photo(0))
        win.controller.export_results(str(tmp_path / MARKUP_NAME / "x.csv"))  # no such folder: a message naming the path
        shown = 0
        for widget in [win, *win.findChildren(QWidget)]:
            if isinstance(widget, QLabel) and "<img" in widget.text():
                assert widget.textFormat() == Qt.TextFormat.PlainText, f"{widget!r} would render {widget.text()!r}"
                shown += 1
            tip = widget.toolTip()
            assert "<img" not in tip and "<b>" not in tip, f"{widget!r} tooltip renders markup: {tip!r}"
            shown += "&lt;img" in tip
        model_tip = win.photos.index(0).data(Qt.ItemDataRole.ToolTipRole)
        assert "&lt;img" in model_tip and "<img" not in model_tip
        assert win.messages.last_message is not None and win.messages.last_message.textFormat() == Qt.TextFormat.PlainText
        assert MARKUP_NAME in win.messages.last_message.text()
        assert shown >= 3  # the weights path, the message and the gallery were all checked, not skipped
        assert all(MARKUP in r.label for r in win.controls.top5.rows if r.isVisible())  # painted as text, not parsed
    finally:
        win.close()


def test_download_into_a_folder_that_cannot_be_written_ends_with_a_message(qtbot, settings, monkeypatch, tmp_path,
                                                                           checkpoint_is_v2):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    monkeypatch.setenv("TORCH_HOME", str(blocker / "torch"))
    with WeightsServer({"mirror.pth": checkpoint_is_v2}) as srv:
        monkeypatch.setenv("RESNEXT_GUI_WEIGHTS_URL", f"{srv.base}/mirror.pth")
        win = open_window(qtbot, settings, None, state="missing")
        try:
            win.model.download_weights()
            qtbot.waitUntil(lambda: win.model.download_dialog is None, timeout=30_000)
            assert win.messages.last_message.windowTitle() == "Download failed" and win.model.banner.download_button.isEnabled()
        finally:
            win.close()


def test_cancel_on_a_stalled_mirror_takes_effect_at_once(qtbot, settings, monkeypatch, checkpoint_is_v2):
    with WeightsServer({"mirror.pth": checkpoint_is_v2}) as srv:
        monkeypatch.setenv("RESNEXT_GUI_WEIGHTS_URL", f"{srv.base}/stall/mirror.pth")
        win = open_window(qtbot, settings, None, state="missing")
        try:
            win.model.download_weights()
            qtbot.waitUntil(srv.stalled.is_set, timeout=30_000)
            cancel = next(b for b in win.model.download_dialog.findChildren(QPushButton) if b.text() == "Cancel")
            qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: win.model.download_dialog is None, timeout=MODEL_TIMEOUT)
            assert not srv.stall_over.is_set()  # ended by the cancel, while the mirror still held the connection
            assert "cancelled" in win.statusBar().currentMessage().lower() and win.model.banner.download_button.isEnabled()
            assert win.messages.last_message is None  # a cancel is not reported as a failure
        finally:
            win.close()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_remembered_cuda_device_falls_back_to_the_cpu_with_a_note(qtbot, settings, checkpoint):
    settings.setValue("device", "cuda")
    from resnext_gui.ui.main_window import MainWindow

    win = MainWindow(weights=str(checkpoint), settings=settings, worker=None)
    qtbot.addWidget(win)
    win.show()
    messages = []
    win.statusBar().messageChanged.connect(messages.append)
    try:
        with qtbot.waitSignal(win.modelStateChanged, timeout=MODEL_TIMEOUT) as blocker:
            win.start()
        assert blocker.args == ["ready"] and win.model.device_label.text().startswith("CPU")
        assert any("no CUDA GPU" in m and "Using the CPU" in m for m in messages)
        with qtbot.waitSignal(win.modelStateChanged, timeout=MODEL_TIMEOUT) as blocker:
            win.model.set_device("cpu")
        assert blocker.args == ["ready"] and settings.value("device") == "cpu"
    finally:
        win.close()
