"""The window as people use photo apps: the defects found trying it, and sort/filter/search, zoom, copy, legend."""

import json

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QGuiApplication, QImage, QImageReader
from PySide6.QtWidgets import QApplication, QFileDialog

from resnext_gui.ui.gallery import CELL, GalleryDelegate, Status
from resnext_gui.ui.text import plain
from resnext_gui.worker.jobs.photo import ViewJob
from tests.support.helpers import copies
from tests.support.qt_fixtures import MODEL_TIMEOUT, drop_and_list, open_window, wait_all_done
from tests.support.ui_fakes import FakeFactory


@pytest.fixture
def fwin(qtbot, settings):
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    yield win
    win.close()


def _done(qtbot, win, paths):
    drop_and_list(qtbot, win, paths)
    wait_all_done(qtbot, win)


# ---------------------------------------------------------------- defects
def test_a_chosen_weights_file_is_remembered_and_offered_under_recent(qtbot, settings, tmp_path, monkeypatch):
    from resnext_gui.ui.main_window import MainWindow

    chosen = tmp_path / "mine.pth"
    chosen.write_bytes(b"fake")
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    try:
        with qtbot.waitSignal(win.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == "ready"):
            win.model.load_weights(str(chosen))
        win.model.fill_recent_menu()
        assert [a.text() for a in win.commands.menus["recent"].actions()] == ["mine.pth"] and win.commands.menus["recent"].isEnabled()
    finally:
        win.close()
    monkeypatch.delenv("RESNEXT_GUI_WEIGHTS", raising=False)
    again = MainWindow(device="cpu", settings=settings)  # its own worker, not started: nothing is loaded
    try:
        assert again.worker.first_model.weights == again.model.weights == str(chosen)  # the next start uses it again
    finally:
        again.close()


def test_the_window_fits_the_screen_and_selecting_a_photo_never_grows_it(qtbot, fwin, tmp_path, photos):
    fwin.showNormal()
    fwin.resize(6000, 4000)
    fwin.fit_to_screen()
    free = fwin.screen().availableGeometry()
    assert fwin.width() <= free.width() and fwin.height() <= free.height()
    size = fwin.size()
    name = tmp_path / ("a_very_long_file_name_without_any_break_" * 6 + ".jpg")
    name.write_text("not a photo")
    _done(qtbot, fwin, [name])
    fwin.select(fwin.photos.photo(0))
    QApplication.processEvents()
    assert fwin.size() == size and fwin.minimumSizeHint().width() <= free.width()


def test_export_uses_the_chosen_format_and_adds_its_extension(qtbot, fwin, photos, tmp_path, monkeypatch):
    _done(qtbot, fwin, [photos["coffee"]])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "myresults"), "JSON (*.json)"))
    fwin.presenter.export_dialog()
    records = json.loads((tmp_path / "myresults.json").read_text())
    assert records[0]["ok"] and not (tmp_path / "myresults").exists()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "results.csv"), "JSON (*.json)"))
    fwin.presenter.export_dialog()
    assert json.loads((tmp_path / "results.json").read_text()) == records


def test_the_right_panel_controls_stay_put_whatever_is_selected(qtbot, fwin, photos, tmp_path):
    def where():
        QApplication.processEvents()
        return [w.mapTo(fwin, QPoint(0, 0)).y() for w in (fwin.controls.clear_button, fwin.controls.layer_box, fwin.controls.opacity)]

    empty = where()
    bad = tmp_path / "bad.jpg"
    bad.write_text("x" * 50)
    _done(qtbot, fwin, [photos["coffee"], bad])
    fwin.select(fwin.photos.photo(1))
    assert plain(fwin.controls.top5.message.text()).endswith(").") and where() == empty  # the refusal is a sentence
    fwin.select(fwin.photos.photo(0))
    assert where() == empty


def test_new_drops_select_their_first_photo_and_scroll_to_it(qtbot, fwin, photos, tmp_path):
    _done(qtbot, fwin, copies([photos["coffee"]], 30, tmp_path, "a"))
    fwin.select(fwin.photos.photo(0))
    drop_and_list(qtbot, fwin, copies([photos["chelsea"]], 2, tmp_path, "b"))
    assert fwin.current_photo() is fwin.photos.photo(30)
    assert fwin.gallery.viewport().rect().intersects(fwin.gallery.visualRect(fwin.gallery.currentIndex()))


def test_the_layer_is_a_global_setting_applied_to_each_photo_as_it_is_shown(qtbot, settings, photos, tmp_path):
    factory = FakeFactory()
    win = open_window(qtbot, settings, "fake.pth", factory=factory)
    try:
        files = copies([photos["coffee"], photos["chelsea"]], 2, tmp_path)
        _done(qtbot, win, files)
        first, second = win.photos.photo(0), win.photos.photo(1)
        win.select(first)
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: first.result.layer == "layer3"):
            win.controls.layer_box.setCurrentIndex(1)
        assert second.result.layer == "layer4"  # not recomputed until it is shown
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: second.result.layer == "layer3"):
            win.select(second)
        assert plain(win.controls.top5.title.text()).endswith("Grad-CAM (14×14)")
        # a failed recompute is said once and not asked again each time the photo is shown
        files[1].unlink()
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: second.note is not None):
            win.controls.layer_box.setCurrentIndex(0)
        assert "Could not compute the new heatmap" in plain(win.controls.top5.message.text())
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: first.result.layer == "layer4"):
            win.select(first)
        win.select(second)
        win.select(first)
        with qtbot.waitSignal(win.worker.finished, timeout=30_000):  # a view job: the worker took every request so far
            win.worker.submit(ViewJob(first.item_id, str(files[0])))
        asked = [call for call in factory.made[0].calls if call[1] == "layer4" and call[0] == files[1].name]
        assert len(asked) == 2  # its first answer, and the one recompute that failed
    finally:
        win.close()


def test_stop_counts_what_the_summary_counts(qtbot, settings, photos, tmp_path):
    import threading

    gate = threading.Event()
    factory = FakeFactory(gate)
    win = open_window(qtbot, settings, "fake.pth", factory=factory)
    try:
        drop_and_list(qtbot, win, copies([photos["coffee"]], 5, tmp_path))
        qtbot.waitUntil(lambda: factory.made and factory.made[-1].busy.is_set(), timeout=30_000)
        win.stop()
        counts = win.photos.counts()
        text = win.statusBar().currentMessage()
        assert f"Stopped {counts[Status.STOPPED]} photos" in text and f"{counts[Status.QUEUED]} already in progress" in text
        assert f"{counts[Status.STOPPED]} stopped" in win.summary_label.text()
        gate.set()
        wait_all_done(qtbot, win)
    finally:
        gate.set()
        win.close()


def test_download_dialog_sits_over_the_window_and_cancel_is_not_a_failure(qtbot, settings, monkeypatch):
    from PySide6.QtWidgets import QProgressDialog, QPushButton

    from tests.support.helpers import WeightsServer

    with WeightsServer({"mirror.pth": b"x" * 4096}) as srv:
        monkeypatch.setenv("RESNEXT_GUI_WEIGHTS_URL", f"{srv.base}/stall/mirror.pth")
        win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
        try:
            win.model.download_weights()
            dlg = win.model.download_dialog
            assert dlg.isVisible() and win.geometry().contains(dlg.geometry().center())
            assert dlg.width() > dlg.fontMetrics().horizontalAdvance(dlg.windowTitle())
            assert not win.commands["download"].isEnabled()
            qtbot.waitUntil(srv.stalled.is_set, timeout=30_000)
            qtbot.mouseClick(dlg.findChild(QPushButton), Qt.MouseButton.LeftButton)  # Cancel
            assert dlg.labelText() == "Cancelling…"
            qtbot.waitUntil(lambda: win.model.download_dialog is None, timeout=30_000)
            assert win.messages.last_message is None and "cancelled" in win.statusBar().currentMessage()
            assert not [d for d in win.findChildren(QProgressDialog) if d.isVisible()] and win.commands["download"].isEnabled()
        finally:
            win.close()


def test_clear_resets_the_heading_and_can_be_undone(qtbot, fwin, photos):
    _done(qtbot, fwin, [photos["coffee"], photos["chelsea"]])
    assert "Grad-CAM" in plain(fwin.controls.top5.title.text())
    fwin.clear()
    assert plain(fwin.controls.top5.title.text()) == "Top 5" and len(fwin.photos) == 0 and fwin.windowTitle() == "ResNeXt Classifier"
    fwin.activateWindow()
    qtbot.keyClick(fwin, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [p.status for p in fwin.photos] == [Status.DONE, Status.DONE] and fwin.current_photo() is not None


def test_no_progress_bar_while_nothing_runs(qtbot, settings, photos):
    win = open_window(qtbot, settings, None, state="missing")
    try:
        drop_and_list(qtbot, win, [photos["coffee"], photos["chelsea"], photos["astronaut"]])
        assert not win.progress.isVisible() and win.photos.counts()[Status.QUEUED] == 3
    finally:
        win.close()


def test_gallery_names_are_elided_in_the_middle_and_never_scroll_sideways(qtbot, fwin, tmp_path, photos):
    import shutil

    path = tmp_path / "motorcycle_left_side_view_in_the_rain.png"
    shutil.copy(photos["coffee"], path)
    _done(qtbot, fwin, [path])
    fwin.splitter.setSizes([0, 10_000, 0])  # the gallery at its minimum width
    QApplication.processEvents()
    assert not fwin.gallery.horizontalScrollBar().isVisible()
    caption, name = GalleryDelegate.lines(fwin.photos.photo(0), fwin.gallery.fontMetrics(), CELL.width() - 8)
    assert name.endswith(".png") and "…" in name and name.startswith("motor")  # cut in the middle


def test_keyboard_reaches_every_control_and_moves_between_classes(qtbot, fwin, photos):
    _done(qtbot, fwin, [photos["coffee"]])
    original, overlay, heatmap = fwin.controls.mode_buttons
    assert all(b.toolTip() for b in (original, overlay, heatmap, fwin.controls.opacity))
    original.setFocus()
    qtbot.keyClick(original, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is overlay
    qtbot.keyClick(overlay, Qt.Key.Key_Space)
    assert fwin.view.mode == "overlay" and overlay.isChecked() and not original.isChecked()
    row = fwin.controls.top5.rows[0]
    row.setFocus()
    qtbot.keyClick(row, Qt.Key.Key_Right)
    assert fwin.controls.top5.rows[1].hasFocus() and fwin.presenter.selected_rank == 2


def _tab_stops(qtbot, win):
    """Every widget Tab reaches from the gallery's search box, in order, until it comes round again, each with
    how it looks while it has the keyboard and once Tab has moved on."""
    start = win.gallery_bar.search
    start.setFocus()
    qtbot.waitUntil(start.hasFocus)
    stops = []
    while (widget := QApplication.focusWidget()) not in [w for w, _, _ in stops] and len(stops) < 60:
        focused = widget.grab().toImage()
        qtbot.keyClick(widget, Qt.Key.Key_Tab)
        qtbot.waitUntil(lambda w=widget: not w.hasFocus())
        stops.append((widget, focused, widget.grab().toImage()))
    return stops


@pytest.mark.parametrize("with_photo", [False, True])
def test_every_tab_stop_shows_that_it_has_the_keyboard_and_the_gallery_is_framed(qtbot, fwin, photos, with_photo):
    from PySide6.QtGui import QColor, QPalette

    if with_photo:
        _done(qtbot, fwin, [photos["coffee"]])
    fwin.activateWindow()
    qtbot.waitActive(fwin)
    stops = _tab_stops(qtbot, fwin)
    widgets = [w for w, _, _ in stops]
    assert fwin.gallery in widgets and fwin.view in widgets and len(stops) >= 12
    for widget, focused, after in stops:
        assert focused != after, f"{type(widget).__name__} {widget.accessibleName()!r} shows no focus"
    fwin.gallery.setFocus()
    qtbot.waitUntil(fwin.gallery.hasFocus)
    edge = fwin.gallery.viewport().grab().toImage()
    ring = fwin.gallery.palette().color(QPalette.ColorRole.Highlight)
    w, h = edge.width(), edge.height()
    for x, y in ((w // 2, 0), (0, h // 2), (w - 1, h // 2), (w // 2, h - 1)):  # the frame on every side
        assert QColor(edge.pixel(x, y)) == ring, (x, y)


# ---------------------------------------------------------------- title
def test_title_names_the_photo_its_size_and_class_and_keys_zoom(qtbot, fwin, photos):
    _done(qtbot, fwin, [photos["coffee"]])
    top = fwin.current_photo().result.top
    assert fwin.windowTitle().startswith(f"coffee.png · 600×400 · {top[0].label}")
    fwin.controls.top5.select(2)
    assert top[1].label in fwin.windowTitle()
    fwin.view.setFocus()
    qtbot.keyClick(fwin.view, Qt.Key.Key_Equal)
    assert fwin.view.zoom is not None and "%" in fwin.windowTitle().split(" — ")[0]
    qtbot.keyClick(fwin.view, Qt.Key.Key_0)
    assert fwin.view.zoom is None


# ---------------------------------------------------------------- gallery: sort, filter, search, remove, retry
def test_search_box_filters_and_selection_maps_through_it(qtbot, fwin, photos, tmp_path):
    _done(qtbot, fwin, [photos["coffee"], photos["chelsea"], photos["astronaut"]])
    assert {p.result.top[0].label for p in fwin.photos} == {"class 0"}  # the fake's top class for every photo
    qtbot.keyClicks(fwin.gallery_bar.search, "class 1")  # the second class of each: not searched
    assert fwin.proxy.rowCount() == 0
    fwin.gallery_bar.search.clear()
    qtbot.keyClicks(fwin.gallery_bar.search, "CLASS 0")
    assert fwin.proxy.rowCount() == 3
    fwin.gallery_bar.search.clear()
    qtbot.keyClicks(fwin.gallery_bar.search, "chelsea")
    assert fwin.proxy.rowCount() == 1
    assert fwin.current_photo() is fwin.photos.photo(1)
    assert not fwin.select(fwin.photos.photo(0))  # hidden by the search
    fwin.gallery_bar.search.clear()
    assert fwin.select(fwin.photos.photo(2)) and fwin.current_photo() is fwin.photos.photo(2)


def test_delete_removes_and_duplicates_are_not_added_twice(qtbot, fwin, photos):
    _done(qtbot, fwin, [photos["coffee"], photos["chelsea"]])
    _done(qtbot, fwin, [photos["coffee"]])
    assert len(fwin.photos) == 2 and "already in the gallery" in fwin.statusBar().currentMessage()
    fwin.select(fwin.photos.photo(0))
    fwin.gallery.setFocus()
    qtbot.keyClick(fwin.gallery, Qt.Key.Key_Delete)
    assert [p.name for p in fwin.photos] == [str(photos["chelsea"])] and fwin.current_photo() is fwin.photos.photo(0)
    assert fwin.commands["undo"].text() == "&Undo Remove" and fwin.commands["undo"].isEnabled()
    qtbot.keyClick(fwin.gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Z: back where it was
    assert [p.name for p in fwin.photos] == [str(photos["coffee"]), str(photos["chelsea"])]
    assert fwin.commands["undo"].text() == "&Undo" and not fwin.commands["undo"].isEnabled()
    qtbot.keyClick(fwin.gallery, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(fwin.gallery, Qt.Key.Key_Delete)  # the whole selection
    assert len(fwin.photos) == 0
    fwin.commands["undo"].trigger()
    assert len(fwin.photos) == 2
    fwin.select(fwin.photos.photo(0))
    qtbot.keyClick(fwin.gallery, Qt.Key.Key_Delete)
    _done(qtbot, fwin, [photos["coffee"]])  # removed: it may come back
    assert len(fwin.photos) == 2


def test_retry_classifies_failed_and_stopped_photos_again(qtbot, fwin, photos, tmp_path):
    import shutil

    target = tmp_path / "later.png"
    target.write_text("not yet")
    _done(qtbot, fwin, [target])
    photo = fwin.photos.photo(0)
    assert photo.status is Status.FAILED
    shutil.copy(photos["coffee"], target)  # the file is fixed
    fwin.controller.retry()
    wait_all_done(qtbot, fwin)
    assert photo.status is Status.DONE and fwin.controls.top5.rows[0].isVisible()


def test_context_menu_offers_the_photo_actions(qtbot, fwin, photos):
    _done(qtbot, fwin, [photos["coffee"]])
    rect = fwin.gallery.visualRect(fwin.proxy.index(0, 0))
    fwin.gallery_menu_for(rect.center())
    texts = [a.text().replace("&", "") for a in fwin.gallery_menu.actions() if not a.isSeparator()]
    assert {"Copy Result and Overlay", "Retry", "Remove Photo", "Save Overlay as PNG…", "Undo"} <= set(texts)
    assert not fwin.commands["retry"].isEnabled()  # a classified photo has nothing to retry
    fwin.gallery_menu.close()


# ---------------------------------------------------------------- copy, drop feedback, legend, save, splitter
def test_ctrl_c_copies_the_top5_and_the_overlay(qtbot, fwin, photos):
    _done(qtbot, fwin, [photos["coffee"]])
    fwin.activateWindow()
    fwin.gallery.setFocus()
    qtbot.keyClick(fwin.gallery, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    mime = QGuiApplication.clipboard().mimeData()
    top = fwin.current_photo().result.top
    assert mime.text().splitlines()[1] == f"1. {top[0].label} {top[0].prob:.1%}" and len(mime.text().splitlines()) == 6
    assert mime.hasImage() and QImage(mime.imageData()).size().width() == 600
    QGuiApplication.clipboard().clear()


def test_drop_highlight_and_skipped_files_are_counted(qtbot, fwin, photos, tmp_path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photos["coffee"]))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(fwin, enter)
    assert fwin.drop_overlay.isVisible() and "1 item" in fwin.drop_overlay.text
    assert not fwin.view.placeholder_shown  # the empty window's hint is not left in pieces round the drop label
    QApplication.sendEvent(fwin, QDragLeaveEvent())
    assert not fwin.drop_overlay.isVisible() and fwin.view.placeholder_shown
    QApplication.sendEvent(fwin, enter)
    notes = [tmp_path / f"n{i}.txt" for i in range(3)]
    for n in notes:
        n.write_text("x")
    drop_and_list(qtbot, fwin, [photos["coffee"], *notes])
    assert not fwin.drop_overlay.isVisible() and fwin.view.placeholder_shown
    assert len(fwin.photos) == 1 and fwin.statusBar().currentMessage() == "3 files skipped: not images."


def test_legend_follows_the_colour_map_opacity_and_mode(qtbot, fwin):
    assert fwin.controls.legend.isVisible()
    fwin.controls.opacity.setValue(35)
    assert fwin.controls.legend.caption() == "opacity 35%"
    fwin.controls.cmap.setCurrentText("hot")
    assert fwin.controls.legend.cmap == "hot"
    fwin.set_mode("heatmap")
    assert fwin.controls.legend.caption() == "heatmap only"


def test_save_overlay_names_the_photo_class_and_layer_in_the_name_and_the_png(qtbot, fwin, photos, tmp_path, monkeypatch):
    _done(qtbot, fwin, [photos["coffee"]])
    fwin.controls.top5.select(2)
    label = fwin.current_photo().result.top[1].label
    seen = {}

    def dialog(parent, title, suggested, filters):
        seen["name"] = suggested
        return str(tmp_path / "out"), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    fwin.presenter.save_overlay()
    qtbot.waitUntil((tmp_path / "out.png").exists)  # written by the worker
    assert seen["name"].endswith(f"coffee.{label}.gradcam.layer4.png")
    reader = QImageReader(str(tmp_path / "out.png"))
    assert reader.text("Class") == label and reader.text("Layer") == "layer4" and reader.text("Rank") == "2"
    assert reader.text("Method") == "Grad-CAM"
    assert reader.text("Source").endswith("coffee.png")


def test_splitter_positions_are_remembered(qtbot, settings):
    win = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    before = win.splitter.sizes()
    win.splitter.setSizes([before[0], before[1] - 40, before[2] + 40])  # a choice of the user's, though the photo's
    win.splitter.splitterMoved.emit(before[0] + 1, 2)  # share gets smaller: chosen by dragging the handle
    sizes = win.splitter.sizes()
    assert sizes != before
    win.close()
    again = open_window(qtbot, settings, "fake.pth", factory=FakeFactory())
    try:
        got = again.splitter.sizes()
        assert (got[0], got[2]) == (sizes[0], sizes[2])  # the gallery and the panel as left; the view takes the rest
    finally:
        again.close()
