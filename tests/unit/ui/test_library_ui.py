"""The results library in the window: last time's gallery without a forward pass, exactly the changed photos
recomputed, a damaged library set aside with one message, Forget and Clear, and Write Keywords' summary."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from resnext_gui.ui.controller import BatchController
from resnext_gui.ui.gallery import GalleryModel, Status
from resnext_gui.ui.library_ui import LibraryController, keywords_summary
from resnext_gui.ui.main_window import MainWindow
from resnext_gui.ui.messages import Messages
from resnext_gui.worker.jobs.model import LoadJob
from resnext_gui.worker.runner import Worker
from tests.support.ui_fakes import FakeFactory

TIMEOUT = 60_000


class KeyedFactory(FakeFactory):
    """Fake classifiers whose checkpoint hash follows the weights file named: another file is another model."""

    def __call__(self, weights, device, *, backend, precision, progress):
        clf = super().__call__(weights, device, backend=backend, precision=precision, progress=progress)
        clf.checkpoint.sha256 = hashlib.sha256(str(weights).encode()).hexdigest()
        return clf

    def passes(self) -> list[str]:
        """Every forward pass of every model made, by photo name."""
        return [name for clf in self.made for name, _layer in clf.calls]


def tiny_photos(folder, n, start=0):
    """``n`` small photos, each its own content (so the library's content hash tells them apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        path = folder / f"p{i:03}.png"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


class Rig:
    """The library's window side without a window: gallery model, batch controller, messages, a real worker."""

    def __init__(self, qtbot, library, weights="first.pth", factory=None):
        self.qtbot = qtbot
        self.factory = factory or KeyedFactory()
        self.worker = Worker(weights, "cpu", classifier_factory=self.factory, library=library)
        self.messages = Messages()
        self.messages.listen(self.worker)
        self.said: list[str] = []  # every status-bar text
        self.messages.status.connect(lambda text, _ms: self.said.append(text))
        self.photos = GalleryModel()
        self.controller = BatchController(self.photos, self.worker, self.messages, lambda: None)
        self.library = LibraryController(self.photos, self.controller, self.worker, self.messages)
        with qtbot.waitSignal(self.library.restored, timeout=TIMEOUT):
            self.worker.start()
            self.worker.submit(LoadJob(weights, "cpu"))  # the first model, as the window loads it
            self.library.restore()

    def add(self, paths):
        before = len(self.factory.passes())
        self.controller.enqueue([(str(p), str(p)) for p in paths])
        self.wait_done()
        return self.factory.passes()[before:]

    def wait_done(self):
        self.qtbot.waitUntil(lambda: len(self.photos) and all(p.status is not Status.QUEUED for p in self.photos),
                             timeout=TIMEOUT)

    def info(self):
        with self.qtbot.waitSignal(self.library.infoChanged, timeout=TIMEOUT) as blocker:
            self.library.refresh_info()
        return blocker.args[0]

    def stop(self):
        assert self.worker.stop()


@pytest.fixture
def rigs(qtbot):
    made = []

    def make(library, **kw):
        made.append(Rig(qtbot, library, **kw))
        return made[-1]

    yield make
    for rig in made:
        rig.stop()
        if rig.messages.last_message is not None:
            rig.messages.last_message.close()


def open_window(qtbot, settings, library, factory):
    worker = Worker("first.pth", "cpu", classifier_factory=factory, library=library)
    win = MainWindow(weights="first.pth", device="cpu", settings=settings, worker=worker)
    worker.setParent(win)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.library.restored, timeout=TIMEOUT):
        win.start()
    return win


def test_a_reopened_window_shows_last_times_200_photos_without_a_forward_pass(qtbot, settings, tmp_path):
    library = tmp_path / "library.sqlite3"
    files = tiny_photos(tmp_path / "photos", 200)
    first = KeyedFactory()
    win = open_window(qtbot, settings, library, first)
    with qtbot.waitSignal(win.scanFinished, timeout=TIMEOUT):
        win.add_paths([str(tmp_path / "photos")])
    qtbot.waitUntil(lambda: len(win.photos) == 200 and all(p.status is Status.DONE for p in win.photos), timeout=TIMEOUT)
    assert len(first.passes()) == 200
    order = [p.source for p in win.photos]
    win.close()
    assert not win.worker.is_running()

    again = KeyedFactory()
    win2 = open_window(qtbot, settings, library, again)
    qtbot.waitUntil(lambda: len(win2.photos) == 200 and all(p.status is Status.DONE for p in win2.photos), timeout=TIMEOUT)
    assert again.passes() == []  # not one forward pass
    assert [p.source for p in win2.photos] == order  # last time's gallery, in its order
    assert all(p.thumb is not None and p.result.cached and p.result.maps.shape[0] == 5 for p in win2.photos)
    assert win2.time_label.text().startswith("from the library")
    assert "200 photos" in win2.summary_label.toolTip()
    # a photo dropped again is answered from the library too; a view of it decodes the photo itself
    win2.select(win2.photos.photo(7))
    qtbot.waitUntil(lambda: win2.photos.display(win2.photos.photo(7).item_id) is not None, timeout=TIMEOUT)
    assert again.passes() == [] and len(files) == 200
    win2.close()


class JobLog:
    """Every job a worker is sent, in order (wraps its submit)."""

    def __init__(self, worker):
        self.jobs = []
        submit = worker.submit

        def logged(job, *args, **kwargs):
            self.jobs.append(job)
            return submit(job, *args, **kwargs)

        worker.submit = logged

    def of(self, kind):
        return [j for j in self.jobs if isinstance(j, kind)]


def test_with_the_28x28_layer_chosen_a_reopened_gallery_is_answered_in_one_job_and_the_photo_shown_gets_its_map_first(
        qtbot, settings, tmp_path):
    from resnext_gui.worker.jobs.photo import ClassifyJob, RecomputeJob, StoredAnswersJob, ViewJob

    library = tmp_path / "library.sqlite3"
    files = tiny_photos(tmp_path / "photos", 40)
    win = open_window(qtbot, settings, library, KeyedFactory())
    with qtbot.waitSignal(win.scanFinished, timeout=TIMEOUT):
        win.add_paths([str(tmp_path / "photos")])
    qtbot.waitUntil(lambda: len(win.photos) == 40 and all(p.status is Status.DONE for p in win.photos), timeout=TIMEOUT)
    win.close()
    files[39].write_bytes(files[0].read_bytes()[:-1] + b"\0")  # changed since: the one photo to classify again

    settings.setValue("layer", "layer2")  # the finest layer chosen: the library keeps the last stage's maps only
    again = KeyedFactory()
    worker = Worker("first.pth", "cpu", classifier_factory=again, library=library)
    log = JobLog(worker)
    win2 = MainWindow(weights="first.pth", device="cpu", settings=settings, worker=worker)
    worker.setParent(win2)
    qtbot.addWidget(win2)
    win2.show()
    qtbot.waitExposed(win2)
    win2.start()
    qtbot.waitUntil(lambda: len(win2.photos) == 40 and all(p.status is not Status.QUEUED for p in win2.photos),
                    timeout=TIMEOUT)
    shown = win2.current_photo()
    assert shown is win2.photos.photo(0)
    qtbot.waitUntil(lambda: shown.result.layer == "layer2", timeout=TIMEOUT)  # the map chosen, for the photo on screen
    assert len(log.of(StoredAnswersJob)) == 1  # the 40 photos from one read of the library, not one job each
    assert [j.item_id for j in log.of(ClassifyJob)] == [win2.photos.photo(39).item_id]  # only the changed one
    cached = [p for p in win2.photos if p.result.cached]
    assert len(cached) == 39 and all(p.thumb is not None and p.result.top for p in cached)
    assert all(p.result.layer == "layer4" for p in cached if p is not shown)  # the stored maps, marked as such
    # forward passes: the photo on screen at the chosen layer first, then the changed photo; nothing else
    assert again.made[0].calls == [("p000.png", "layer2"), ("p039.png", "layer2")]
    assert [j.item_id for j in log.of(RecomputeJob)] == [shown.item_id]
    assert [j.item_id for j in log.of(ViewJob)] == [shown.item_id]  # its view copy, asked once (a decode, no pass)
    qtbot.waitUntil(lambda: bool(again.made[0].faith_calls), timeout=TIMEOUT)  # then the score of the map now shown
    assert again.made[0].faith_calls == [(0, (14, 14))]  # the stand-in's layer-2 map, at its own size
    win2.select(win2.photos.photo(5))  # another photo shown: its map is computed now, and only its own
    qtbot.waitUntil(lambda: win2.photos.photo(5).result.layer == "layer2", timeout=TIMEOUT)
    assert again.made[0].calls[2:] == [("p005.png", "layer2")]
    win2.close()


def test_a_changed_photo_and_other_weights_are_recomputed_and_nothing_else(qtbot, rigs, tmp_path):
    library = tmp_path / "library.sqlite3"
    files = tiny_photos(tmp_path / "photos", 6)
    rig = rigs(library)
    assert sorted(rig.add(files)) == sorted(f.name for f in files)
    rig.controller.clear()
    assert rig.add(files) == []  # the same photos, the same model: all from the library

    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(files[2])  # the file changed
    os.utime(files[2], ns=(1, 1))
    rig.controller.clear()
    assert rig.add(files) == [files[2].name]

    with rig.qtbot.waitSignal(rig.worker.finished, timeout=TIMEOUT):
        rig.worker.submit(LoadJob("second.pth", "cpu", True))
    rig.controller.clear()
    assert rig.add(files[:3]) == [f.name for f in files[:3]]  # other weights: computed again, those three only
    with rig.qtbot.waitSignal(rig.worker.finished, timeout=TIMEOUT):
        rig.worker.submit(LoadJob("first.pth", "cpu", True))
    rig.controller.clear()
    assert rig.add(files) == []  # the first model's answers are still kept


def _truncated_library(path, photos_folder):
    from resnext_gui.core.library import Library

    with Library(path) as lib:  # this app's own library...
        lib.set_gallery([str(p) for p in tiny_photos(photos_folder, 40, start=100)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # ...cut short, its header still saying whose it is


def test_a_damaged_library_is_set_aside_with_one_message_and_a_fresh_start(qtbot, rigs, tmp_path):
    library = tmp_path / "library.sqlite3"
    _truncated_library(library, tmp_path / "old")
    rig = rigs(library)
    box = rig.messages.last_message
    assert box is not None and str(library) in box.text() and "set aside" in box.text()
    box.close()
    rig.messages.last_message = None
    files = tiny_photos(tmp_path / "photos", 2)
    assert len(rig.add(files)) == 2
    assert rig.info().count == 2  # the new library keeps answers
    with qtbot.waitSignal(rig.library.restored, timeout=TIMEOUT):
        rig.library.restore()  # asked again: the note is not said twice
    assert rig.messages.last_message is None


def test_damage_found_in_the_middle_while_photos_are_answered_is_shown_once_with_the_new_name(qtbot, rigs, tmp_path):
    library = tmp_path / "library.sqlite3"
    files = tiny_photos(tmp_path / "photos", 30)
    first = rigs(library)
    assert len(first.add(files)) == 30
    first.stop()
    data = bytearray(library.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = np.random.default_rng(0).bytes(8192)  # 8 KB of random bytes, mid-file
    library.write_bytes(bytes(data))

    rig = rigs(library)
    shown = []
    rig.messages.dialog = lambda title, text, icon: shown.append(text)  # each message the window would show
    rig.add(files)
    qtbot.waitUntil(lambda: any("set aside" in text for text in shown), timeout=TIMEOUT)
    aside = [f for f in os.listdir(tmp_path) if f.startswith("library.sqlite3.damaged-")]
    said = [text for text in shown if "set aside" in text]
    assert len(aside) == 1 and len(said) == 1 and f"set aside as {aside[0]}" in said[0]
    rig.info()  # asked again: not said twice
    assert len([text for text in shown if "set aside" in text]) == 1


def test_forget_photo_and_clear_library_remove_entries(qtbot, rigs, tmp_path, monkeypatch):
    rig = rigs(tmp_path / "library.sqlite3")
    files = tiny_photos(tmp_path / "photos", 4)
    rig.add(files)
    assert rig.info().count == 4

    forgotten = rig.photos.photo(1)
    with qtbot.waitSignal(rig.library.infoChanged, timeout=TIMEOUT) as blocker:
        rig.library.forget_selected(forgotten)
    assert blocker.args[0].count == 3 and blocker.args[0].changed == 1
    assert len(rig.photos) == 3 and rig.photos.get(forgotten.item_id) is None  # out of the gallery too
    assert files[1].exists()  # the file itself is untouched
    assert rig.add([files[1]]) == [files[1].name]  # computed again: nothing was kept of it

    asked = []
    monkeypatch.setattr(LibraryController, "confirm_clear", lambda self, info: asked.append(info.count) or True)
    with qtbot.waitSignal(rig.library.infoChanged, timeout=TIMEOUT,
                          check_params_cb=lambda info: info.changed == 4) as blocker:
        rig.library.clear_library()
    assert asked == [4] and blocker.args[0].count == 0  # asked with what it held; now empty
    assert len(rig.photos) == 4  # the gallery is not cleared
    rig.controller.clear()
    assert sorted(rig.add(files)) == sorted(f.name for f in files)


def test_write_keywords_says_what_was_written_and_which_photo_failed(qtbot, rigs, tmp_path):
    rig = rigs(tmp_path / "library.sqlite3")
    files = tiny_photos(tmp_path / "photos", 3)
    rig.add(files)
    bad = files[1].with_name(files[1].name + ".xmp")
    bad.write_bytes(b"\x00\x01 not XMP at all")  # a sidecar of some other program's: never replaced
    with qtbot.waitSignal(rig.library.keywordsDone, timeout=TIMEOUT) as blocker:
        rig.library.write_keywords(list(rig.photos))
    summary = blocker.args[0]
    assert summary.startswith("Keywords written for 2 photos; 1 failed:")
    assert summary.splitlines()[1].startswith(f"{files[1].name}: {bad.name} is not an XMP file")
    assert bad.read_bytes() == b"\x00\x01 not XMP at all"
    for f in (files[0], files[2]):  # a model of its own classes: its keywords under its own parent
        assert "<rdf:li>ResNeXt|first|class 0</rdf:li>" in f.with_name(f.name + ".xmp").read_text(encoding="utf-8")
    failed = rig.photos.photo(1)
    assert failed.note is not None and failed.note.startswith("Keywords not written")
    box = rig.messages.last_message
    assert box is not None and box.text() == summary


def test_photos_gone_since_last_time_are_left_out_and_said(qtbot, rigs, tmp_path):
    library = tmp_path / "library.sqlite3"
    files = tiny_photos(tmp_path / "photos", 4)
    rig = rigs(library)
    rig.add(files)
    rig.library.closing()  # the window closes: its gallery is written as the worker stops
    rig.stop()
    files[1].unlink()
    again = rigs(library)
    again.wait_done()
    assert [p.source for p in again.photos] == [str(f) for f in files if f != files[1]]
    assert again.factory.passes() == []
    assert [t for t in again.said if "could not be found" in t] == [
        f"1 photo from last time could not be found and was left out: {files[1]}."]


def test_the_library_window_finds_earlier_photos_and_adds_them_without_a_forward_pass(qtbot, rigs, tmp_path):
    rig = rigs(tmp_path / "library.sqlite3")
    earlier = tiny_photos(tmp_path / "earlier day", 3)
    rig.add(earlier)
    rig.controller.clear()  # another day: the gallery no longer has them
    today = tiny_photos(tmp_path / "today", 2, start=10)
    rig.add(today)
    with qtbot.waitSignal(rig.library.searched, timeout=TIMEOUT) as blocker:
        dialog = rig.library.open_library("p00")
    qtbot.addWidget(dialog)
    assert sorted(m.path for m in blocker.args[0]) == sorted(str(p) for p in earlier)
    assert dialog.list.count() == 3 and "3 photos found" in dialog.summary.text()
    before = len(rig.factory.passes())
    dialog.add_all_button.click()
    rig.wait_done()
    assert len(rig.photos) == 5 and len(rig.factory.passes()) == before  # answered from the library
    assert all(p.result.cached for p in rig.photos if "earlier day" in p.source)


def test_the_library_window_shows_the_searched_class_s_rank_and_probability_under_every_thumbnail(qtbot):
    """Each match says the searched class, its probability and its place in the photo's top five ("tabby 37%
    (#3)"), whole, under a square, a portrait or a landscape thumbnail alike."""
    from types import SimpleNamespace

    from PySide6.QtGui import QColor, QImage

    from resnext_gui.ui.library_ui import LibraryDialog
    from resnext_gui.worker.results import LibraryInfo, LibraryMatch

    def thumb(w, h):
        image = QImage(w, h, QImage.Format.Format_RGB32)
        image.fill(QColor(200, 200, 200))
        return image

    library = SimpleNamespace(search=lambda text: None, add_to_gallery=lambda paths: None, forget=lambda paths: None)
    dialog = LibraryDialog(library)
    qtbot.addWidget(dialog)
    dialog.set_text("tabby")
    matches = [LibraryMatch("/p/kitten.jpg", "tabby", 0.91, 1.7e9, True, thumb(96, 96), 1, "tabby", 0.91),
               LibraryMatch("/p/portrait of a cup.jpg", "tabby", 0.37, 1.7e9, True, thumb(72, 96), 3, "espresso", 0.4),
               LibraryMatch("/p/tabby_projectile_launch_over_the_bay.jpg", "projectile", 0.66, 1.7e9, True,
                            thumb(96, 72), None, "projectile", 0.66)]
    dialog.show_matches(matches, LibraryInfo("/lib", 3, 1000, True))
    dialog.resize(640, 480)
    dialog.show()
    qtbot.waitExposed(dialog)
    items = [dialog.list.item(i) for i in range(dialog.list.count())]
    assert [i.text().splitlines()[0] for i in items] == ["tabby 91% (#1)", "tabby 37% (#3)", "projectile 66%"]
    assert "#3 of its top classes" in items[1].toolTip() and "Top class: espresso" in items[1].toolTip()
    assert "top five at 10" in dialog.summary.text()
    shot = dialog.list.viewport().grab().toImage()
    font = dialog.list.font()
    for row, item in enumerate(items):
        index = dialog.list.model().index(row, 0)
        rect = dialog.list.visualItemRect(item)
        lines = dialog.list.itemDelegate().lines(index, font, rect.width() - 8)
        assert " ".join(lines[:-1]) == item.text().splitlines()[0] and "…" not in " ".join(lines[:-1])  # whole
        below = range(rect.top() + 4 + 96 + 4, rect.bottom())  # under the thumbnail's box: its caption is drawn
        ink = [(x, y) for y in below for x in range(rect.left() + 4, rect.right() - 4)
               if QColor(shot.pixel(x, y)).lightness() < 128]
        assert len(ink) > 30, item.text()


def test_a_search_says_it_is_searching_until_its_answer_comes_and_an_empty_one_lists_the_newest(qtbot):
    """The worker may be busy with a photo's figures: the dialog says what it is searching for, the earlier
    answer greyed, instead of standing blank or showing the earlier search as the new one's."""
    from types import SimpleNamespace

    from resnext_gui.ui.library_ui import LibraryDialog
    from resnext_gui.worker.results import LibraryInfo, LibraryMatch

    asked = []
    library = SimpleNamespace(search=asked.append, add_to_gallery=lambda paths: None, forget=lambda paths: None)
    dialog = LibraryDialog(library)
    qtbot.addWidget(dialog)
    match = LibraryMatch("/p/kitten.jpg", "tabby", 0.91, 1.7e9, True, None, 1, "tabby", 0.91)
    dialog.show_matches([match], LibraryInfo("/lib", 1, 1000, True))
    assert dialog.summary.text().startswith("1 photo, newest first") and dialog.list.isEnabled()
    dialog.set_text("suit")
    dialog.searching()
    assert dialog.summary.text() == "Searching the library for “suit”…" and not dialog.list.isEnabled()
    dialog.show_matches([], LibraryInfo("/lib", 1, 1000, True))
    assert dialog.summary.text().startswith("Nothing found for “suit”") and dialog.list.isEnabled()


def test_the_summary_names_every_failure_up_to_a_limit():
    from resnext_gui.worker.results import KeywordsOutcome

    out = KeywordsOutcome(written=[(1, "a.xmp")] * 12, failed=[(i, f"f{i}.jpg", "read-only folder") for i in range(25)])
    text = keywords_summary(out)
    assert text.splitlines()[0] == "Keywords written for 12 photos; 25 failed:"
    assert "f0.jpg: read-only folder" in text and "f24.jpg" not in text and text.endswith("… and 5 more.")
    assert keywords_summary(KeywordsOutcome(written=[(1, "a.xmp")])) == "Keywords written for 1 photo."


def test_a_reopened_photo_is_scored_with_the_same_map_as_when_it_was_classified(qtbot, settings, tmp_path):
    """The faithfulness score of a photo read back from the library is asked for with the map it was asked for
    with when the photo was classified (at the layer's own size, at 8 bits), so its figures, the random map's
    included, are the same."""
    from resnext_gui.core.faithfulness import eight_bit
    from resnext_gui.worker.jobs.photo import FaithfulnessJob

    library = tmp_path / "library.sqlite3"
    tiny_photos(tmp_path / "photos", 1)
    win = open_window(qtbot, settings, library, KeyedFactory())
    log = JobLog(win.worker)
    with qtbot.waitSignal(win.scanFinished, timeout=TIMEOUT):
        win.add_paths([str(tmp_path / "photos")])
    qtbot.waitUntil(lambda: len(win.photos) == 1 and win.photos.photo(0).status is Status.DONE, timeout=TIMEOUT)
    win.select(win.photos.photo(0))
    qtbot.waitUntil(lambda: len(log.of(FaithfulnessJob)) > 0, timeout=TIMEOUT)
    fresh = log.of(FaithfulnessJob)[-1]
    win.close()

    win2 = open_window(qtbot, settings, library, KeyedFactory())
    log2 = JobLog(win2.worker)
    qtbot.waitUntil(lambda: len(win2.photos) == 1 and win2.photos.photo(0).status is Status.DONE, timeout=TIMEOUT)
    assert win2.photos.photo(0).result.cached
    win2.select(win2.photos.photo(0))
    qtbot.waitUntil(lambda: len(log2.of(FaithfulnessJob)) > 0, timeout=TIMEOUT)
    reopened = log2.of(FaithfulnessJob)[-1]
    assert (reopened.class_index, reopened.method, reopened.layer) == (fresh.class_index, fresh.method, fresh.layer)
    assert reopened.cam.shape == fresh.cam.shape == (7, 7)  # the layer's own size, never the view's 224 x 224
    assert np.array_equal(eight_bit(reopened.cam), eight_bit(fresh.cam))  # the same map to the score
    win2.close()
