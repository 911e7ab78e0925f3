"""The window under real use: big folders, clicks mid-batch, and no state the user can't leave."""

import threading

import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from resnext_gui.ui.gallery import Status
from resnext_gui.ui.text import plain
from tests.support.helpers import WeightsServer, copies
from tests.support.qt_fixtures import MODEL_TIMEOUT, drop_and_list, open_window, wait_all_done
from tests.support.ui_fakes import FakeFactory


class TurnLog:
    """What the GUI thread did, in order: "slice" for each slice of photos the window took in, "other" for a
    0 ms timer (everything else waiting on the event loop). Counted, never timed."""

    def __init__(self, intake) -> None:
        self.log: list[str] = []
        intake.arrived.connect(lambda sources, select, listing: self.log.append("slice"))
        self.timer = QTimer()
        self.timer.setInterval(0)
        self.timer.timeout.connect(lambda: self.log.append("other"))

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()

    def runs(self) -> list[int]:
        """How many slices came one after another without anything else between them, for each such run."""
        text = "".join("s" if e == "slice" else " " for e in self.log)
        return [len(run) for run in text.split()]


@pytest.fixture
def big_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("five_thousand")
    for sub in range(10):
        (root / f"roll{sub}").mkdir()
        for i in range(500):
            Image.new("RGB", (8, 6), (sub * 20, i % 256, 90)).save(root / f"roll{sub}" / f"img{i:03}.png")
    return root


def test_a_5000_photo_folder_is_listed_without_blocking_the_window(qtbot, settings, big_folder, photos):
    gate = threading.Event()  # the model holds its first photo: the probe measures the listing
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory(gate))
    try:
        drop_and_list(qtbot, win, [photos["coffee"]])  # Qt's first-use work (fonts, first paint) is done
        with TurnLog(win.intake) as turns:
            drop_and_list(qtbot, win, [big_folder], timeout=120_000)
        assert len(win.photos) == 5001
        assert win.photos.photo(1).name.endswith("roll0/img000.png") and win.photos.photo(5000).name.endswith("roll9/img499.png")
        runs = turns.runs()
        assert sum(runs) >= -(-5000 // 32)  # at most ARRIVAL_SLICE photos a slice ...
        assert len(runs) >= 10, f"slices taken in {len(runs)} turns: the window did little else while listing"
        gate.set()  # answers arrive while the rest waits
        qtbot.waitUntil(lambda: win.photos.counts()[Status.DONE] >= 200, timeout=60_000)
        win.stop()  # the photo being computed finishes; every other one is stopped
        qtbot.waitUntil(lambda: win.photos.counts()[Status.QUEUED] == 0, timeout=30_000)
        counts = win.photos.counts()
        assert counts[Status.QUEUED] == 0 and counts[Status.STOPPED] + counts[Status.DONE] == 5001
    finally:
        gate.set()
        win.close()


def test_an_old_photo_selected_mid_batch_shows_at_once_and_in_full_before_the_batch_ends(qtbot, settings, photos, tmp_path):
    gate = threading.Event()
    factory = FakeFactory()
    win = open_window(qtbot, settings, "fake.pth", factory=factory)
    try:
        win.photos.display_cache = 2
        first = copies([photos["coffee"]], 3, tmp_path, "early")
        drop_and_list(qtbot, win, first)
        wait_all_done(qtbot, win)
        factory.made[0].gate = gate  # the batch that follows is held at its first photo
        factory.made[0].busy.clear()
        drop_and_list(qtbot, win, copies([photos["chelsea"]], 6, tmp_path, "late"))
        qtbot.waitUntil(factory.made[0].busy.is_set)
        old = win.photos.photo(0)
        assert win.photos.display(old.item_id) is None  # evicted: only its thumbnail is kept
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: i == old.item_id):
            win.select(old)
            assert win.view.has_photo() and win.view.photo_width() < 200  # the thumbnail, at once
            assert win.presenter.current_map() is not None  # and its heatmap
            gate.set()
        assert win.view.photo_width() == 600  # the full view, while the batch is still running
        assert any(p.status is Status.QUEUED for p in win.photos)
        order = [name for name, _ in factory.made[0].calls]
        assert order[:4] == [f"early{i:02}.png" for i in range(3)] + ["late00.png"]
    finally:
        gate.set()
        win.close()


# ---- states the user must always be able to leave ----

def test_an_interrupted_download_ends_with_a_message_and_download_usable_again(qtbot, settings, monkeypatch, isolated_env,
                                                                               checkpoint_is_v2):
    with WeightsServer({"mirror.pth": checkpoint_is_v2}) as srv:
        monkeypatch.setenv("RESNEXT_GUI_WEIGHTS_URL", f"{srv.base}/chunked-drop/mirror.pth")
        win = open_window(qtbot, settings, None, state="missing")
        try:
            qtbot.mouseClick(win.model.banner.download_button, Qt.MouseButton.LeftButton)
            assert win.model.download_dialog is not None and not win.model.banner.download_button.isEnabled()
            qtbot.waitUntil(lambda: win.model.download_dialog is None, timeout=30_000)
            assert win.messages.last_message is not None and win.messages.last_message.windowTitle() == "Download failed"
            assert win.messages.last_message.text()
            assert win.model.banner.download_button.isEnabled() and win.commands["download"].isEnabled()
            assert win.model.state == "missing" and win.model.banner.isVisible()
            hub = isolated_env / "torch" / "hub" / "checkpoints"
            assert not hub.exists() or not any(hub.iterdir())  # nothing half-written was left behind
        finally:
            win.close()


def test_a_refused_weights_file_leaves_the_status_bar_naming_the_model_in_use(qtbot, window, tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    with qtbot.waitSignal(window.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == "failed"):
        window.model.load_weights(str(bad))
    assert window.model.device_label.text() == window.model.info.device and "Loading" not in window.model.device_label.text()
    assert window.messages.last_message.icon() == QMessageBox.Icon.Warning


def test_a_photo_deleted_after_it_was_classified_says_so_when_selected(qtbot, settings, photos, tmp_path):
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    try:
        win.photos.display_cache = 1
        files = copies([photos["coffee"]], 2, tmp_path)
        drop_and_list(qtbot, win, files)
        wait_all_done(qtbot, win)
        first, second = win.photos.photo(0), win.photos.photo(1)
        win.select(second)
        assert win.photos.display(first.item_id) is None  # only its thumbnail is kept
        files[0].unlink()
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: i == first.item_id):
            win.select(first)
        assert "does not exist" in plain(win.controls.top5.message.text()) and "thumbnail" in plain(win.controls.top5.message.text())
        assert win.view.has_photo() and len([r for r in win.controls.top5.rows if r.isVisible()]) == 5
        win.select(second)  # every control still works
        assert plain(win.controls.top5.message.text()) == "" and win.view.photo_width() == 600
    finally:
        win.close()


def test_a_failed_recompute_says_so_and_keeps_showing_what_is_current(qtbot, settings, photos, tmp_path):
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    try:
        (photo_path,) = copies([photos["coffee"]], 1, tmp_path)
        drop_and_list(qtbot, win, [photo_path])
        wait_all_done(qtbot, win)
        photo = win.current_photo()
        photo_path.unlink()
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: photo.note is not None):
            win.controls.layer_box.setCurrentIndex(1)
        assert photo.result.layer == "layer4"
        assert "Could not compute the new heatmap" in plain(win.controls.top5.message.text()) and "last stage" in plain(win.controls.top5.message.text())
        assert plain(win.controls.top5.title.text()).endswith("Grad-CAM (7×7)")
    finally:
        win.close()
