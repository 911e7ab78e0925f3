"""The photo shown (ui/presenter.py), built from its parts with a fake worker: view, top 5, title, class chosen."""

import json

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.controller import BatchController, ModelState
from resnext_gui.ui.controls import ControlPanel
from resnext_gui.ui.gallery import GalleryModel, GalleryView
from resnext_gui.ui.gallery_filter import GalleryFilter
from resnext_gui.ui.image_view import ImageView
from resnext_gui.ui.messages import Messages
from resnext_gui.ui.presenter import APP_TITLE, IDLE_HINT, Presenter
from resnext_gui.ui.text import plain
from resnext_gui.worker.jobs.photo import ClassifyJob, SaveImageJob, ViewJob
from resnext_gui.worker.queue import JobFailed
from resnext_gui.worker.results import PhotoResult
from tests.support.ui_fakes import FakeWorker


@pytest.fixture
def rig(qtbot, tmp_path):
    worker, messages, photos = FakeWorker(), Messages(), GalleryModel()
    worker.answered = []
    messages.listen(worker)
    proxy = GalleryFilter()
    proxy.setSourceModel(photos)
    gallery, view, controls = GalleryView(), ImageView(), ControlPanel()
    gallery.setModel(proxy)
    for w in (gallery, view, controls):
        qtbot.addWidget(w)
    controls.show()
    holder = {}
    controller = BatchController(photos, worker, messages, lambda: holder["p"].current_photo())
    presenter = Presenter(photos, proxy, gallery, view, controls, controller, messages,
                          QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    holder["p"] = presenter
    titles = []
    presenter.titleChanged.connect(titles.append)
    controller.set_model_state(ModelState.READY)
    return presenter, controller, worker, photos, view, controls, titles


def answer(worker, job, maps):
    top = [TopClass(r + 1, r, f"class {r}", 0.5 / (r + 1)) for r in range(5)]
    worker.answer(job, PhotoResult(job.item_id, True, str(job.source), top=top, maps=maps, crop=(0, 0, 1, 1),
                                   display=QImage(60, 40, QImage.Format.Format_RGB888), size=(60, 40),
                                   record={"ok": True}))


def write(worker):
    """Run the Save Overlay jobs not yet answered, as the worker's thread would, and answer them."""
    for job in worker.of(SaveImageJob):
        if not any(job is done for done in worker.answered):  # jobs alike compare equal: by identity
            worker.answered.append(job)
            try:
                path = job.run(None)
            except JobFailed as exc:
                worker.fail(job, str(exc))
            else:
                worker.answer(job, path)


def test_a_classified_photo_shows_its_top_5_its_map_and_the_title_names_it(qtbot, rig):
    presenter, controller, worker, photos, view, controls, titles = rig
    (photo,) = controller.enqueue([("/p/cat.png", "/p/cat.png")])
    assert presenter.current_photo() is photo and plain(controls.top5.message.text()) == "Classifying…"
    maps = np.stack([np.full((224, 224), r * 40, np.uint8) for r in range(5)])
    answer(worker, worker.of(ClassifyJob)[0], maps)
    qtbot.waitUntil(lambda: titles and "class 0" in titles[-1])
    assert titles[-1] == f"cat.png · 60×40 · class 0 50% — {APP_TITLE}"
    assert plain(controls.top5.title.text()) == "Top 5 · Grad-CAM (7×7)"
    assert np.array_equal(presenter.current_map(), maps[0]) and view.photo_width() == 60
    presenter.choose_class(3)
    assert np.array_equal(presenter.current_map(), maps[2]) and "class 2 17%" in titles[-1]


def test_a_photo_without_its_full_view_shows_the_thumbnail_and_asks_once(qtbot, rig):
    presenter, controller, worker, photos, view, controls, titles = rig
    photos.display_cache = 0
    (photo,) = controller.enqueue([("/p/a.png", "/p/a.png")])
    answer(worker, worker.of(ClassifyJob)[0], None)
    qtbot.waitUntil(lambda: photo.result is not None)
    presenter.refresh()
    presenter.refresh()
    assert len(worker.of(ViewJob)) == 1 and view.placeholder == "Loading /p/a.png…"


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (800, 600)])
def test_a_photo_known_by_its_thumbnail_only_is_fitted_to_the_view_not_shown_as_a_stamp(qtbot, rig, size):
    """Classified earlier (the library, or past the display cache): the 96-px thumbnail stands in, drawn at the
    size the view copy will have, until that copy comes; then the photo is just as large."""
    presenter, controller, worker, photos, view, controls, titles = rig
    view.resize(720, 540)
    (photo,) = controller.enqueue([("/p/a.jpg", "/p/a.jpg")])
    job = worker.of(ClassifyJob)[0]
    top = [TopClass(r + 1, r, f"class {r}", 0.5 / (r + 1)) for r in range(5)]
    w, h = size
    thumb = QImage(96 * w // max(w, h), 96 * h // max(w, h), QImage.Format.Format_RGB888)
    worker.answer(job, PhotoResult(job.item_id, True, "/p/a.jpg", top=top, crop=(0, 0, 1, 1), thumb=thumb, size=size,
                                   maps=np.zeros((5, 224, 224), np.uint8), record={"ok": True}))
    qtbot.waitUntil(lambda: photo.result is not None)
    presenter.refresh()
    stand_in = view._fit()
    assert view.photo_width() == thumb.width()  # the thumbnail is what is drawn ...
    copy_w, copy_h = round(w * min(1.0, 1280 / max(w, h))), round(h * min(1.0, 1280 / max(w, h)))  # the view copy
    fitted = min(720 / copy_w, 540 / copy_h, 1.0)
    assert (stand_in.width(), stand_in.height()) == pytest.approx((copy_w * fitted, copy_h * fitted), abs=1.5)
    (view_job,) = worker.of(ViewJob)
    copy = QImage(copy_w, copy_h, QImage.Format.Format_RGB888)
    worker.answer(view_job, copy)
    assert view.photo_width() == copy.width()
    assert (view._fit().width(), view._fit().height()) == pytest.approx((stand_in.width(), stand_in.height()), abs=1.5)


def test_a_failed_photo_says_why_and_nothing_selected_says_so(qtbot, rig):
    presenter, controller, worker, photos, view, controls, titles = rig
    (photo,) = controller.enqueue([("/p/x.png", "/p/x.png")])
    worker.fail(worker.of(ClassifyJob)[0], "not an image")
    qtbot.waitUntil(lambda: photo.result is not None)
    assert view.placeholder == "Could not classify this file\n\nnot an image." and plain(controls.top5.message.text()) == "not an image."
    controller.clear()
    assert view.placeholder == IDLE_HINT and titles[-1] == APP_TITLE and plain(controls.top5.title.text()) == "Top 5"


def _exported(presenter, photos, monkeypatch, tmp_path, button):
    """Export with the search on, the question answered with the button whose text starts with ``button``."""
    asked = []

    def click(box):
        asked.append(box.text())
        choice = next((b for b in box.buttons() if b.text().startswith(button)), None)
        (choice or box.button(QMessageBox.StandardButton.Cancel)).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", click)
    target = tmp_path / f"export{len(list(tmp_path.glob('export*')))}.json"  # a new file each time
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "JSON (*.json)"))
    presenter.export_dialog()
    return asked, ([r["path"] for r in json.loads(target.read_text())] if target.exists() else None)


def test_export_while_the_search_hides_photos_asks_which_and_writes_what_was_chosen(qtbot, rig, monkeypatch, tmp_path):
    presenter, controller, worker, photos, view, controls, titles = rig
    names = ["/p/cat.png", "/p/dog.png", "/p/cat2.png"]
    controller.enqueue([(n, n) for n in names])
    for job in worker.of(ClassifyJob):
        top = [TopClass(1, 0, "class 0", 0.9)]
        worker.answer(job, PhotoResult(job.item_id, True, str(job.source), top=top, record={"path": str(job.source), "ok": True}))
    qtbot.waitUntil(lambda: all(p.result is not None for p in photos))
    asked, written = _exported(presenter, photos, monkeypatch, tmp_path, "All")
    assert asked == [] and written == names  # nothing hidden: no question
    presenter.proxy.set_text("cat")
    asked, written = _exported(presenter, photos, monkeypatch, tmp_path, "Only")
    assert asked == ["The gallery's search or filter shows 2 of the 3 photos with results. Which results should be exported?"]
    assert written == ["/p/cat.png", "/p/cat2.png"]
    asked, written = _exported(presenter, photos, monkeypatch, tmp_path, "All 3")
    assert written == names
    asked, written = _exported(presenter, photos, monkeypatch, tmp_path, "Cancel")
    assert asked and written is None  # cancelled: no file dialog, nothing written
    presenter.proxy.set_text("no such photo")
    asked, written = _exported(presenter, photos, monkeypatch, tmp_path, "Only")
    assert asked and written is None  # none shown: only "All" is offered, and not clicked here


def test_the_zoom_in_the_title_is_of_the_photo_s_own_pixels(qtbot, rig):
    presenter, controller, worker, photos, view, controls, titles = rig
    view.resize(400, 300)
    controller.enqueue([("/p/big.png", "/p/big.png")])
    (job,) = worker.of(ClassifyJob)
    top = [TopClass(1, 0, "class 0", 0.9)]
    worker.answer(job, PhotoResult(job.item_id, True, "/p/big.png", top=top, crop=(0, 0, 1, 1), record={"ok": True},
                                   display=QImage(100, 50, QImage.Format.Format_RGB888), size=(800, 400)))
    qtbot.waitUntil(lambda: titles and "class 0" in titles[-1])
    view.actual_size()
    assert titles[-1] == f"big.png · 800×400 · class 0 90% · 100% — {APP_TITLE}" and view._fit().width() == pytest.approx(800)


def test_zoom_past_the_display_copy_shows_every_pixel_and_save_overlay_writes_the_full_photo(qtbot, rig, tmp_path):
    """The worker decodes the whole photo (here: the fake worker's answer) once the view is zoomed past the
    reduced copy, and for Save Overlay; the GUI thread only shows and writes what it gets."""
    presenter, controller, worker, photos, view, controls, titles = rig
    view.resize(400, 300)
    controller.enqueue([("/p/a.png", "/p/a.png"), ("/p/b.png", "/p/b.png")])
    maps = np.stack([np.full((224, 224), 200, np.uint8)] * 5)
    top = [TopClass(1, 0, "class 0", 0.9)]
    for job in worker.of(ClassifyJob):
        worker.answer(job, PhotoResult(job.item_id, True, str(job.source), top=top, crop=(0, 0, 1, 1), maps=maps,
                                       record={"ok": True}, display=QImage(100, 50, QImage.Format.Format_RGB888),
                                       size=(800, 400)))
    qtbot.waitUntil(lambda: all(p.result is not None for p in photos))
    a, b = photos
    presenter.select(a)
    assert not [j for j in worker.of(ViewJob) if j.full]  # fitted: the display copy is enough
    view.actual_size()
    view.zoom_by(1.25)
    fulls = [j for j in worker.of(ViewJob) if j.full]
    assert [j.item_id for j in fulls] == [a.item_id]  # asked once
    full = QImage(800, 400, QImage.Format.Format_RGB888)
    full.fill(0x808080)
    worker.answer(fulls[0], full)
    assert view.photo_width() == 800 and view.photo_zoom() == pytest.approx(1.25) and view._fit().width() == pytest.approx(1000)
    assert presenter.save_overlay_to(str(tmp_path / "a.png"))  # every pixel is here: handed to the worker at once
    write(worker)
    assert QImage(str(tmp_path / "a.png")).size().toTuple() == (800, 400)
    presenter.select(b)
    assert view.photo_width() == 100 and photos.display(a.item_id).width() == 100  # the full photo was never cached
    assert not presenter.save_overlay_to(str(tmp_path / "b.png")) and not (tmp_path / "b.png").exists()
    (job,) = [j for j in worker.of(ViewJob) if j.full and j.item_id == b.item_id]
    worker.answer(job, full)
    write(worker)
    assert QImage(str(tmp_path / "b.png")).size().toTuple() == (800, 400)


def test_save_overlay_is_written_by_the_worker_whole_never_through_a_link_or_into_a_pipe(qtbot, rig, tmp_path,
                                                                                       monkeypatch):
    """The GUI thread only composes the image; the worker encodes and writes it through core.files.atomic_file."""
    import errno
    import os
    import stat

    from resnext_gui.core import files

    presenter, controller, worker, photos, view, controls, titles = rig
    statuses = []
    presenter.messages.status.connect(lambda text, ms: statuses.append(text))
    controller.enqueue([("/p/cat.png", "/p/cat.png")])
    answer(worker, worker.of(ClassifyJob)[0], np.stack([np.full((224, 224), 90, np.uint8)] * 5))
    qtbot.waitUntil(lambda: presenter.current_photo().result is not None)
    out = tmp_path / "out.png"
    assert presenter.save_overlay_to(str(out))
    assert not out.exists() and [j.path for j in worker.of(SaveImageJob)] == [str(out)]  # nothing written here
    write(worker)
    assert QImage(str(out)).size().toTuple() == (60, 40) and statuses[-1] == f"Saved {out}"
    # an existing file is replaced by a new one (another inode) with its mode kept, not rewritten in place
    out.chmod(0o600)
    inode = out.stat().st_ino
    presenter.save_overlay_to(str(out))
    write(worker)
    assert out.stat().st_ino != inode and stat.S_IMODE(out.stat().st_mode) == 0o600
    # a planted link: the link is replaced, what it points at is untouched
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.png"
    link.symlink_to(victim)
    presenter.save_overlay_to(str(link))
    write(worker)
    assert victim.read_text() == "keep me" and not link.is_symlink() and QImage(str(link)).width() == 60
    # a named pipe (or a link to one) is refused, said in a warning, never opened
    for name in ("pipe.png", "pipe-link.png"):
        target = tmp_path / name
        if name == "pipe.png":
            os.mkfifo(target)
        else:
            target.symlink_to(tmp_path / "pipe.png")
        presenter.save_overlay_to(str(target))
        write(worker)
        box = presenter.messages.last_message
        assert box is not None and box.windowTitle() == "Save Overlay failed"
        assert f"Could not save {target}: it is a named pipe, not a regular file" in box.text()
        assert stat.S_ISFIFO(os.stat(target).st_mode)
        box.close()
    # a full disk: a clear message, the old file as it was, no temporary file left behind
    before = out.read_bytes()

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_fdopen = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    presenter.save_overlay_to(str(out))
    write(worker)
    monkeypatch.undo()
    assert f"Could not save {out}: {os.strerror(errno.ENOSPC)}" == presenter.messages.last_message.text()
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.glob(".out.png.*")) == []


def test_the_gallery_selects_several_and_copy_remove_and_export_take_them_all(qtbot, rig, monkeypatch, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication

    presenter, controller, worker, photos, view, controls, titles = rig
    gallery = presenter.gallery
    gallery.resize(700, 400)
    gallery.show()
    qtbot.waitExposed(gallery)
    names = [f"/p/{n}.png" for n in "abcd"]
    a, b, c, d = controller.enqueue([(n, n) for n in names])
    for job in worker.of(ClassifyJob):
        worker.answer(job, PhotoResult(job.item_id, True, str(job.source), top=[TopClass(1, 0, "class 0", 0.9)],
                                       record={"path": str(job.source), "ok": True}))
    qtbot.waitUntil(lambda: all(p.result is not None for p in photos))
    gallery.setFocus()
    assert presenter.selected_photos() == [a]
    qtbot.keyClick(gallery, Qt.Key.Key_End, Qt.KeyboardModifier.ShiftModifier)
    assert presenter.selected_photos() == [a, b, c, d] and presenter.current_photo() is d
    centre = lambda p: gallery.visualRect(presenter.proxy.index(photos.row_of(p), 0)).center()  # noqa: E731
    qtbot.mouseClick(gallery.viewport(), Qt.MouseButton.LeftButton, pos=centre(b))
    assert presenter.selected_photos() == [b]
    qtbot.mouseClick(gallery.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, centre(c))
    assert presenter.selected_photos() == [b, c]
    presenter.gallery_menu_pos(centre(b))  # a right-click on the selection keeps it: the menu is about both
    assert presenter.selected_photos() == [b, c]
    presenter.copy()
    assert QGuiApplication.clipboard().text() == "/p/b.png\n1. class 0 90.0%\n\n/p/c.png\n1. class 0 90.0%"
    asked, written = _exported(presenter, photos, monkeypatch, tmp_path, "Only the 2 Selected")
    assert asked == ["2 of the 4 photos with results are selected. Which results should be exported?"]
    assert written == ["/p/b.png", "/p/c.png"]
    presenter.remove_selected()
    assert list(photos) == [a, d] and presenter.current_photo() is d
    controller.undo()
    assert list(photos) == [a, b, c, d]
    qtbot.keyClick(gallery, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert presenter.selected_photos() == [a, b, c, d]


def test_save_overlay_on_several_photos_writes_each_one_at_full_size_into_a_folder(qtbot, rig, tmp_path):
    from PySide6.QtCore import QItemSelection, QItemSelectionModel

    presenter, controller, worker, photos, view, controls, titles = rig
    status = []
    presenter.messages.status.connect(lambda text, ms: status.append(text))
    controller.enqueue([(n, n) for n in ("/p/a.png", "/p/b.png", "/p/c.png")])
    maps = np.stack([np.full((224, 224), 250, np.uint8)] * 5)
    a_job, b_job, c_job = worker.of(ClassifyJob)
    for job in (a_job, c_job):
        worker.answer(job, PhotoResult(job.item_id, True, str(job.source), top=[TopClass(1, 0, "class 0", 0.9)],
                                       crop=(0, 0, 1, 1), maps=maps, record={"ok": True}, size=(800, 400),
                                       display=QImage(100, 50, QImage.Format.Format_RGB888)))
    worker.fail(b_job, "broken")
    qtbot.waitUntil(lambda: all(p.result is not None for p in photos))
    a, b, c = photos
    (tmp_path / "a.class 0.gradcam.layer4.png").write_bytes(b"someone else's")  # never overwritten
    everything = QItemSelection(presenter.proxy.index(0, 0), presenter.proxy.index(2, 0))
    presenter.gallery.selectionModel().select(everything, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    saver = presenter.save_overlays_to(str(tmp_path))
    full = QImage(800, 400, QImage.Format.Format_RGB888)
    full.fill(0x202020)
    for photo in (a, c):  # one photo's every pixel at a time
        (job,) = [j for j in worker.of(ViewJob) if j.full and j.item_id == photo.item_id]
        assert not saver.done
        worker.answer(job, full)
    assert not saver.done and not list(tmp_path.glob("?.class 0.gradcam.layer4-2.png"))  # the worker writes them
    write(worker)
    assert saver.done and (tmp_path / "a.class 0.gradcam.layer4.png").read_bytes() == b"someone else's"
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["a.class 0.gradcam.layer4-2.png", "a.class 0.gradcam.layer4.png", "c.class 0.gradcam.layer4.png"]
    out = QImage(str(tmp_path / "c.class 0.gradcam.layer4.png"))
    assert out.size().toTuple() == (800, 400) and out.pixelColor(400, 200).name() != "#202020"  # the heatmap over it
    assert status[-1] == f"Saved 2 overlays into {tmp_path}; 1 photo not saved (not classified, or unreadable)."
