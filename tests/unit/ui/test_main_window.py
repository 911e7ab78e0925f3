"""The desktop window: drops, results, heatmap per class, bad files, Stop/Clear, closing, weights states."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, Qt, QTimer, QUrl
from PySide6.QtGui import QGuiApplication, QImage

from resnext_gui.ui.gallery import Status
from resnext_gui.ui.text import plain
from tests.support.helpers import WeightsServer, copies, device_without_memory
from tests.support.qt_fixtures import MODEL_TIMEOUT, drop, drop_and_list, open_window, wait_all_done
from tests.support.ui_fakes import FakeFactory


@pytest.fixture
def folder(tmp_path, photos):
    root = tmp_path / "holiday"
    (root / "day2").mkdir(parents=True)
    shutil.copy(photos["chelsea"], root / "cat.png")
    shutil.copy(photos["rocket_jpg"], root / "day2" / "rocket.jpg")
    (root / "day2" / "broken.jpg").write_bytes(photos["rocket_jpg"].read_bytes()[:500])
    (root / "notes.txt").write_text("not an image, not collected from a folder")
    return root


def statuses(win):
    return [(p.name.rsplit("/", 1)[-1], p.status.name.lower()) for p in win.photos]


def test_drop_files_and_folder_shows_results_and_errors(qtbot, window, folder, photos, tmp_path):
    bad = tmp_path / "readme.jpg"
    bad.write_text("hello")
    ev = drop_and_list(qtbot, window, [photos["coffee"], folder, bad])
    assert ev.isAccepted()
    wait_all_done(qtbot, window)
    assert statuses(window) == [
        ("coffee.png", "done"), ("cat.png", "done"), ("broken.jpg", "failed"), ("rocket.jpg", "done"), ("readme.jpg", "failed")
    ]
    assert window.photos.rowCount() == 5
    errors = [p.error for p in window.photos if p.status is Status.FAILED]
    assert "truncated" in errors[0] and "not an image" in errors[1]
    # the selected photo shows its top-5 and the heatmap of class 1
    window.select(window.photos.photo(0))
    item = window.current_photo()
    assert window.view.has_photo()
    rows = [r for r in window.controls.top5.rows if r.isVisible()]
    assert [r.label for r in rows] == [t.label for t in item.result.top] and len(rows) == 5
    assert np.array_equal(window.presenter.current_map(), item.result.maps[0])
    # arrow keys move between photos
    window.gallery.setFocus()
    qtbot.keyClick(window.gallery, Qt.Key.Key_Right)
    assert window.gallery.currentIndex().row() == 1


def test_clicking_another_class_changes_the_heatmap_at_once(qtbot, window, photos):
    drop_and_list(qtbot, window, [photos["astronaut"]])
    wait_all_done(qtbot, window)
    item = window.current_photo()
    first = window.presenter.current_map().copy()
    with qtbot.assertNotEmitted(window.photoUpdated, wait=0):
        qtbot.mouseClick(window.controls.top5.rows[2], Qt.MouseButton.LeftButton)
    assert np.array_equal(window.presenter.current_map(), item.result.maps[2])
    assert not np.array_equal(window.presenter.current_map(), first)
    qtbot.keyClick(window, Qt.Key.Key_4)  # number keys pick a class too
    assert np.array_equal(window.presenter.current_map(), item.result.maps[3])


def test_layer_choice_recomputes_in_the_worker(qtbot, window, photos, checkpoint):
    from resnext_gui.core.classifier import Classifier
    from resnext_gui.worker.images import map_indices as _map_indices

    drop_and_list(qtbot, window, [photos["coffee"]])
    wait_all_done(qtbot, window)
    item = window.current_photo()
    before = item.result.maps.copy()
    with qtbot.waitSignal(window.photoUpdated, timeout=60_000, check_params_cb=lambda i: item.result.layer != "layer4"):
        window.controls.layer_box.setCurrentIndex(1)
    # the maps now shown are the layer3 Grad-CAMs of this photo, computed independently here
    expected = _map_indices(Classifier(checkpoint, device="cpu").classify(photos["coffee"], layer="layer3").cams)
    assert item.result.layer == "layer3" and np.abs(item.result.maps.astype(int) - expected).max() <= 1
    assert not np.array_equal(item.result.maps, before)
    assert np.array_equal(window.presenter.current_map(), item.result.maps[0]) and window.photos.rowCount() == 1


def test_stop_drops_pending_work_and_clear_empties(qtbot, window, photos, tmp_path):
    many = copies([photos["chelsea"]], 12, tmp_path)
    with qtbot.waitSignal(window.photoUpdated, timeout=60_000):
        drop(window, many)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    stopped = [p for p in window.photos if p.status is Status.STOPPED]
    assert stopped, "Esc should stop the photos still waiting"
    # a photo dropped after Stop is answered, and only after the stopped ones were skipped (FIFO queue)
    with qtbot.waitSignal(window.photoUpdated, timeout=60_000, check_params_cb=lambda i: window.photos.get(i).name.endswith("coffee.png")):
        drop(window, [photos["coffee"]])
    # the photo being computed at Stop (and any result already on its way) still lands; the rest never ran
    still_stopped = [p for p in stopped if p.status is Status.STOPPED]
    assert len(still_stopped) >= len(stopped) - 2 and len(still_stopped) >= 8
    window.clear()
    assert window.photos.rowCount() == 0 and not window.view.has_photo()


def test_closing_mid_batch_stops_the_worker_after_the_photo_in_progress(qtbot, settings, photos, tmp_path):
    import threading

    gate = threading.Event()
    factory = FakeFactory(gate)
    window = open_window(qtbot, settings, "fake.pth", factory=factory)
    drop_and_list(qtbot, window, copies([photos["astronaut"]], 20, tmp_path))
    qtbot.waitUntil(factory.made[0].busy.is_set)  # photo 1 is being computed, 19 wait
    gate.set()
    window.close()
    assert not window.worker.is_running() and window.stopped_cleanly
    assert len(factory.made[0].calls) <= 2  # the photo in progress (and at most the one taken meanwhile), no more


def test_answers_are_handed_to_the_window_between_other_events_during_a_batch(qtbot, window, photos, tmp_path):
    """The window takes answers in a turn at a time (PacedQueue, timed in test_paced.py): other events run between."""
    many = copies([photos[n] for n in ("chelsea", "astronaut", "coffee")], 20, tmp_path)
    log = []
    window.photoUpdated.connect(lambda i: log.append("answer"))
    probe = QTimer()
    probe.setInterval(0)
    probe.timeout.connect(lambda: log.append("other"))
    probe.start()
    try:
        drop(window, many)
        wait_all_done(qtbot, window)
    finally:
        probe.stop()
    assert log.count("answer") >= 20
    answered = log[log.index("answer"):len(log) - log[::-1].index("answer")]
    runs = [run for run in "".join("a" if e == "answer" else " " for e in answered).split() if run]
    assert len(runs) >= 5, "the answers came in a single block: the window did nothing else meanwhile"


def test_remote_url_gets_an_offline_message_and_no_entry(qtbot, window):
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/cat.jpg")])
    drop(window, mime=mime)
    message = window.statusBar().currentMessage()
    assert len(window.photos) == 0 and "offline app" in message and "save the image first" in message


def test_image_data_without_a_file_and_paste(qtbot, window, photos):
    mime = QMimeData()
    mime.setImageData(QImage(str(photos["coffee"])))
    drop(window, mime=mime)
    QGuiApplication.clipboard().setMimeData(_png_mime(photos["chelsea"]))
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    wait_all_done(qtbot, window)
    # each image without a file has a name of its own
    assert [(p.name, p.status) for p in window.photos] == [("dropped image 1", Status.DONE), ("pasted image 2", Status.DONE)]
    QGuiApplication.clipboard().clear()


def _png_mime(path):
    mime = QMimeData()
    mime.setData("image/png", path.read_bytes())
    return mime


def test_no_weights_state_waits_then_loads_a_file(qtbot, settings, checkpoint, photos):
    win = open_window(qtbot, settings, None, state="missing")
    try:
        assert win.model.banner.isVisible() and win.model.banner.download_button.text() == "Download ImageNet weights (96 MB)"
        assert "never guesses" in win.model.banner.text.text()
        drop_and_list(qtbot, win, [photos["coffee"]])
        (item,) = win.photos
        assert item.status is Status.QUEUED and item.result is None  # no prediction from random weights
        with qtbot.waitSignal(win.photoUpdated, timeout=MODEL_TIMEOUT, check_params_cb=lambda i: item.result is not None):
            win.model.load_weights(str(checkpoint))
        assert item.status is Status.DONE and not win.model.banner.isVisible()
    finally:
        win.close()


def test_download_button_fetches_verifies_and_loads(qtbot, settings, checkpoint_is_v2, monkeypatch):
    name = "mirror-copy.pth"  # a mirror may name the file as it likes: the bytes are checked against V2
    with WeightsServer({name: checkpoint_is_v2}) as srv:
        monkeypatch.setenv("RESNEXT_GUI_WEIGHTS_URL", f"{srv.base}/{name}")
        win = open_window(qtbot, settings, None, state="missing")
        try:
            qtbot.mouseClick(win.model.banner.download_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: win.model.state == "ready" or win.messages.last_message is not None, timeout=MODEL_TIMEOUT)
            assert win.messages.last_message is None, win.messages.last_message.text()
            assert "resnext50_32x4d-1a0047aa.pth" in win.model.info.weights
        finally:
            win.close()


def test_bad_weights_file_keeps_the_previous_model(qtbot, window, tmp_path, photos):
    bad = tmp_path / "resnet.pth"
    bad.write_bytes(b"")
    before = window.model.info
    with qtbot.waitSignal(window.modelStateChanged, timeout=60_000, check_params_cb=lambda s: s == "failed"):
        window.model.load_weights(str(bad))
    assert window.messages.last_message is not None and "empty" in window.messages.last_message.text()
    assert "previous model stays" in window.messages.last_message.text()
    window.messages.last_message.close()
    drop_and_list(qtbot, window, [photos["coffee"]])
    wait_all_done(qtbot, window)
    assert window.model.info is before and window.photos.photo(0).status is Status.DONE


def test_export_matches_classify_fields_and_overlay_saves(qtbot, window, photos, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_text("no")
    drop_and_list(qtbot, window, [photos["coffee"], bad])
    wait_all_done(qtbot, window)
    window.controller.export_results(str(tmp_path / "r.json"))
    records = json.loads((tmp_path / "r.json").read_text())
    assert [r["ok"] for r in records] == [True, False]
    # the faithfulness figures join once the score of the photo shown is computed (as `classify --faithfulness`)
    assert set(records[0]) - {"faithfulness"} == {"path", "ok", "top", "device", "ms"} and len(records[0]["top"]) == 5
    window.controller.export_results(str(tmp_path / "r.csv"))
    with (tmp_path / "r.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["label1"] == records[0]["top"][0]["label"] and rows[1]["error"]
    window.select(window.photos.photo(0))
    assert window.presenter.save_overlay_to(str(tmp_path / "o.png"))
    # the worker writes it (renamed into place: whole when there), after at most the score pass under way
    qtbot.waitUntil((tmp_path / "o.png").exists, timeout=60_000)
    saved = QImage(str(tmp_path / "o.png"))
    assert (saved.width(), saved.height()) == (600, 400)  # coffee.png at its display size


def test_preferences_persist(qtbot, settings, checkpoint, shared_model):
    win = open_window(qtbot, settings, checkpoint, factory=shared_model)
    win.controls.opacity.setValue(80)
    win.controls.cmap.setCurrentText("turbo")
    win.set_mode("heatmap")
    win.close()
    again = open_window(qtbot, settings, checkpoint, factory=shared_model)
    try:
        assert again.controls.opacity.value() == 80 and again.controls.cmap.currentText() == "turbo" and again.view.mode == "heatmap"
    finally:
        again.close()


def test_device_menu_and_status_bar(qtbot, window):
    assert window.model.device_label.text().startswith("CPU · ")
    assert "seed0" in window.model.weights_label.text()


@pytest.mark.parametrize("cuda", [False, True])
def test_the_cuda_choice_is_offered_only_where_there_is_a_gpu(qtbot, settings, monkeypatch, cuda):
    monkeypatch.setattr("resnext_gui.core.devices.cuda_available", lambda: cuda)
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    try:
        action = win.commands["device_cuda"]
        assert action.isEnabled() is cuda
        assert ("No CUDA" in action.toolTip()) is not cuda
    finally:
        win.close()


def test_gallery_memory_is_bounded(qtbot, window, photos, tmp_path):
    from resnext_gui.ui.gallery import DISPLAY_CACHE

    many = copies([photos["coffee"]], DISPLAY_CACHE + 4, tmp_path)
    drop_and_list(qtbot, window, many)
    wait_all_done(qtbot, window)
    assert window.photos.cached_displays() == DISPLAY_CACHE
    # an evicted photo (the first ones) shows its thumbnail at once, and is decoded again for the full view
    assert window.gallery.currentIndex().row() == 0
    with qtbot.waitSignal(window.photoUpdated, timeout=30_000):
        window.select(window.photos.photo(1))
        assert window.view.has_photo() and window.view.photo_width() <= 96 * window.devicePixelRatio()
    assert window.view.photo_width() == 600


def test_mixed_folder_every_file_accounted_for(qtbot, window, photos, tmp_path):
    from tests.support.helpers import make_mixed_folder

    expect = make_mixed_folder(tmp_path / "mixed", photos["chelsea"])
    drop_and_list(qtbot, window, [tmp_path / "mixed"])
    wait_all_done(qtbot, window)
    got = {str(Path(p.name).relative_to(tmp_path / "mixed")): p.status is Status.DONE for p in window.photos}
    assert got == expect
    assert all(p.error for p in window.photos if p.status is Status.FAILED)


def test_gpu_out_of_memory_falls_back_to_cpu_with_a_visible_note(qtbot, settings, checkpoint, photos, monkeypatch):
    from resnext_gui.core.classifier import Classifier

    def gpu_that_runs_out(weights, device, **options):
        clf = Classifier(weights, device=device, backend="torch")
        device_without_memory(clf)
        return clf

    monkeypatch.setattr("resnext_gui.core.model.describe_device", lambda device: f"{device.type.upper()} · test")

    window = open_window(qtbot, settings, checkpoint, factory=gpu_that_runs_out)
    try:
        drop_and_list(qtbot, window, [photos["coffee"], photos["chelsea"]])
        wait_all_done(qtbot, window)
        assert [p.status for p in window.photos] == [Status.DONE, Status.DONE]
        assert "ran out of memory" in window.time_label.text()
        assert "ran on the CPU" in plain(window.controls.top5.message.text())
    finally:
        window.close()


def test_switching_device_reloads_the_model_in_the_worker(qtbot, window, photos):
    first = window.model.info
    with qtbot.waitSignal(window.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == "ready"):
        [a for a in window.commands.groups["device"].actions() if a.data() == "auto"][0].trigger()
    assert window.model.info is not first and window.settings.value("device") == "auto"
    drop_and_list(qtbot, window, [photos["coffee"]])
    wait_all_done(qtbot, window)
    assert window.photos.photo(0).status is Status.DONE


def test_cpu_runtime_menu_reloads_the_model_and_is_remembered(qtbot, window, photos):
    with qtbot.waitSignal(window.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == "ready"):
        [a for a in window.commands.groups["backend"].actions() if a.data() == "torch"][0].trigger()
    assert window.model.info.backend == "torch" and window.model.device_label.text().endswith("· PyTorch")
    assert window.settings.value("backend") == "torch"
    drop_and_list(qtbot, window, [photos["coffee"]])
    wait_all_done(qtbot, window)
    assert window.photos.photo(0).status is Status.DONE


@pytest.mark.parametrize("native", [False, True])
def test_bfloat16_is_offered_only_where_the_cpu_computes_it(qtbot, settings, monkeypatch, native):
    monkeypatch.setattr("resnext_gui.core.devices.native_bf16", lambda: native)
    factory = FakeFactory()
    win = open_window(qtbot, settings, "fake.pth", factory=factory)
    try:
        bf16 = win.commands["bf16"]
        assert bf16.isEnabled() is native and ("twice as fast" in bf16.toolTip()) is native
        if native:
            with qtbot.waitSignal(win.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == "ready"):
                bf16.trigger()
            assert factory.options[-1]["precision"] == "bf16" and win.settings.value("precision") == "bf16"
            assert win.model.device_label.text().endswith("· OpenVINO bf16")
    finally:
        win.close()


def test_every_command_in_the_table_has_its_handler_on_the_window(qtbot, settings):
    import operator

    from resnext_gui.ui.actions import MENUS, Command
    from resnext_gui.ui.main_window import MainWindow
    from tests.support.ui_fakes import FakeWorker

    win = MainWindow(device="cpu", settings=settings, worker=FakeWorker())
    qtbot.addWidget(win)
    try:
        for _title, entries in MENUS:
            for cmd in entries:
                if isinstance(cmd, Command):
                    assert callable(operator.attrgetter(cmd.handler)(win)), cmd.handler
    finally:
        win.close()
