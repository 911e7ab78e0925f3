"""The CAM method in the window: the choice (persisted, stages offered), Score-CAM of the photo shown with progress
and Cancel, the faithfulness score in the panel (stale answers dropped), and the method in what leaves the window."""

import csv
import json
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QImageReader
from PySide6.QtWidgets import QFileDialog

from resnext_gui.core.cam import METHODS
from resnext_gui.core.faithfulness import Faithfulness
from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.cam_methods import COMPUTING, RECOMPUTING, CamMethods, scorecam_computing
from resnext_gui.ui.controller import BatchController, ModelState
from resnext_gui.ui.controls import ControlPanel
from resnext_gui.ui.gallery import GalleryModel
from resnext_gui.ui.messages import Messages
from resnext_gui.worker.jobs.photo import ClassifyJob, FaithfulnessJob, RecomputeJob, ScoreCamJob
from resnext_gui.worker.queue import CANCELLED
from resnext_gui.worker.results import PhotoResult, ScoreCamMaps
from resnext_gui.worker.runner import Worker
from tests.support.helpers import copies
from tests.support.qt_fixtures import drop_and_list, open_window, start_worker, wait_all_done
from tests.support.ui_fakes import FakeFactory, FakeWorker

GUI = threading.get_ident()  # pytest and Qt's GUI thread


def _choose(win, method):
    box = win.controls.method_box
    box.setCurrentIndex(box.findData(method))


def _open(qtbot, settings, factory=None):
    factory = factory or FakeFactory()
    return open_window(qtbot, settings, "fake.pth", factory=factory), factory


def _done(qtbot, win, paths):
    drop_and_list(qtbot, win, paths)
    wait_all_done(qtbot, win)


# ---------------------------------------------------------------- the choice
def test_the_method_is_one_setting_for_all_photos_that_recomputes_the_photo_shown_and_is_remembered(
        qtbot, settings, photos, tmp_path):
    files = copies([photos["coffee"]], 2, tmp_path)
    win, factory = _open(qtbot, settings)
    try:
        _done(qtbot, win, files)
        win.select(win.photos.photo(1))
        fake = factory.made[0]
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000, check_params_cb=lambda i: i == win.photos.photo(1).item_id):
            _choose(win, "layercam")
        shown, other = win.photos.photo(1), win.photos.photo(0)
        assert shown.result.method == "layercam" and other.result.method == "gradcam"  # the others when shown
        assert fake.methods[-1] == "layercam" and win.controls.top5.title.text() == "Top 5 · Layer-CAM (7×7)"
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000):
            win.select(other)
        assert other.result.method == "layercam"
        assert all(t != GUI for t in fake.threads)  # every map was computed on the worker thread
    finally:
        win.close()
    assert settings.value("cam_method") == "layercam"
    again, factory = _open(qtbot, settings)
    try:
        assert again.controls.method == "layercam" and again.controller.method == "layercam"
        _done(qtbot, again, [photos["chelsea"]])
        assert factory.made[0].methods == ["layercam"]  # a new photo is classified with it at once
    finally:
        again.close()
    settings.setValue("cam_method", "plaid")  # an edited file: the default, never a crash
    settings.sync()
    third, _ = _open(qtbot, settings)
    try:
        assert third.controls.method == "gradcam" and third.controller.method == "gradcam"
    finally:
        third.close()


def test_only_the_stages_a_method_is_offered_at_can_be_chosen(qtbot, monkeypatch):
    panel = ControlPanel()
    qtbot.addWidget(panel)
    assert [panel.method_box.itemData(i) for i in range(panel.method_box.count())] == list(METHODS)
    panel.set_layer("layer2")
    with qtbot.assertNotEmitted(panel.layerChosen):
        now = panel.offer_layers(("layer4", "layer3"), "not offered at this layer")
    model = panel.layer_box.model()
    assert now == panel.layer == "layer4"  # the chosen layer was not offered: the first one is
    assert [model.item(i).isEnabled() for i in range(3)] == [True, True, False]
    assert model.item(2).toolTip() == "not offered at this layer"
    panel.offer_layers(("layer4", "layer3", "layer2"))
    assert all(model.item(i).isEnabled() for i in range(3)) and panel.layer == "layer4"


def test_choosing_a_method_greys_the_stages_it_is_not_offered_at(qtbot, settings, monkeypatch):
    from resnext_gui.ui import main_window

    monkeypatch.setattr(main_window, "method_layers", lambda m: ("layer4",) if m == "scorecam" else ("layer4", "layer3", "layer2"))
    win = main_window.MainWindow(device="cpu", settings=settings, worker=FakeWorker())
    qtbot.addWidget(win)
    win.controls.layer_box.setCurrentIndex(1)
    assert win.controller.layer == "layer3"
    _choose(win, "scorecam")
    model = win.controls.layer_box.model()
    assert [model.item(i).isEnabled() for i in range(3)] == [True, False, False]
    assert win.controls.layer == win.controller.layer == "layer4" and settings.value("layer") == "layer4"
    assert model.item(1).toolTip() == "Score-CAM is not offered at this layer"
    _choose(win, "gradcam")
    assert all(model.item(i).isEnabled() for i in range(3))
    win.close()


# ---------------------------------------------------------------- Score-CAM
def test_score_cam_on_the_worker_reports_progress_and_cancel_stops_it_between_batches(qtbot, photos):
    factory = FakeFactory()
    worker = Worker("w.pth", "cpu", classifier_factory=factory)
    seen = {"progress": [], "failed": [], "finished": []}
    worker.progress.connect(lambda job, done, total: seen["progress"].append((job, done, total)))
    worker.failed.connect(lambda job, message: seen["failed"].append((job, message)))
    worker.finished.connect(lambda job, res: seen["finished"].append((job, res)))
    try:
        with qtbot.waitSignal(worker.finished, timeout=30_000):
            start_worker(worker)
        fake = factory.made[0]
        fake.score_hold = threading.Event()
        job = worker.submit(ScoreCamJob(1, str(photos["coffee"]), "layer4", tuple([3, 1])))
        qtbot.waitUntil(lambda: (job, 1, fake.score_total) in seen["progress"], timeout=30_000)
        worker.cancel(job)
        fake.score_hold.set()
        qtbot.waitUntil(lambda: bool(seen["failed"]), timeout=30_000)
        assert seen["failed"] == [(job, CANCELLED)] and fake.score_done == 1 < fake.score_total  # no batch after Cancel
        whole = worker.submit(ScoreCamJob(2, str(photos["coffee"]), "layer3", tuple([3, 1])))
        qtbot.waitUntil(lambda: seen["finished"][-1][0] is whole, timeout=30_000)
        maps = seen["finished"][-1][1]
        assert isinstance(maps, ScoreCamMaps) and maps.classes == (3, 1) and maps.layer == "layer3"
        assert maps.maps.shape == (2, 224, 224) and maps.maps.dtype == np.uint8
        assert (whole, fake.score_total, fake.score_total) in seen["progress"] and fake.score_done == 1 + fake.score_total
        assert all(t != GUI for t in fake.threads)
    finally:
        assert worker.stop()


def test_score_cam_is_computed_for_the_photo_shown_only_with_a_progress_bar_and_cancel(qtbot, settings, photos, tmp_path):
    files = copies([photos["coffee"]], 2, tmp_path)
    win, factory = _open(qtbot, settings)
    try:
        _done(qtbot, win, files)
        fake = factory.made[0]
        fake.score_hold = threading.Event()
        first, second = win.photos.photo(0), win.photos.photo(1)
        win.select(first)
        _choose(win, "scorecam")
        bar = win.score_bar
        qtbot.waitUntil(lambda: bar.isVisible() and bar.bar.value() == 1, timeout=30_000)
        assert win.controls.top5.score.text() == scorecam_computing("Grad-CAM")  # and no faithfulness of a map about to go
        # the window goes on while the worker computes: a key moves to the next photo, whose Score-CAM supersedes
        win.gallery.setFocus()
        qtbot.keyClick(win.gallery, Qt.Key.Key_Right)
        assert win.current_photo() is second
        fake.score_hold.set()
        qtbot.waitUntil(lambda: second.result.method == "scorecam", timeout=30_000)
        assert first.result.method == "gradcam"  # not shown any more: kept its one-pass map
        assert fake.score_done == 1 + fake.score_total and not bar.isVisible()
        assert win.controls.top5.title.text() == "Top 5 · Score-CAM (7×7)"
        assert second.result.record["cam_method"] == "scorecam"
        # Cancel, in the status bar: the photo keeps its one-pass map and says so
        fake.score_hold = threading.Event()
        win.select(first)
        qtbot.waitUntil(lambda: bar.isVisible() and bar.bar.value() == 1, timeout=30_000)
        with qtbot.waitSignal(win.worker.failed, timeout=30_000):
            qtbot.mouseClick(bar.cancel, Qt.MouseButton.LeftButton)
            assert not bar.isVisible()
            fake.score_hold.set()
        assert fake.score_done == 2 + fake.score_total and first.result.method == "gradcam"
        assert first.note == "Score-CAM cancelled: showing Grad-CAM. Show the photo again to compute it."
        assert win.controls.top5.message.text() == first.note
        assert all(t != GUI for t in fake.threads)
    finally:
        win.close()


@pytest.mark.slow
def test_with_the_real_classifier_cancel_stops_score_cam_and_the_score_comes_from_the_worker(qtbot, checkpoint, shared_model, photos):
    worker = Worker(str(checkpoint), "cpu", classifier_factory=shared_model)
    seen = {"progress": [], "failed": [], "finished": []}
    worker.progress.connect(lambda job, done, total: seen["progress"].append((job, done, total)))
    worker.failed.connect(lambda job, message: seen["failed"].append((job, message)))
    worker.finished.connect(lambda job, res: seen["finished"].append((job, res)))
    try:
        with qtbot.waitSignal(worker.finished, timeout=120_000):
            start_worker(worker)
        job = worker.submit(ScoreCamJob(1, str(photos["coffee"]), "layer4", tuple([967, 0])))
        qtbot.waitUntil(lambda: any(p[0] is job for p in seen["progress"]), timeout=60_000)
        worker.cancel(job)
        qtbot.waitUntil(lambda: bool(seen["failed"]), timeout=60_000)
        done = [d for j, d, total in seen["progress"] if j is job]
        assert seen["failed"] == [(job, CANCELLED)] and max(done) <= 2 * done[0] < 2048  # a batch at most after Cancel
        cam = np.zeros((7, 7), np.float32)
        cam[2:5, 2:5] = 1.0
        faith = worker.submit(FaithfulnessJob(1, str(photos["coffee"]), 967, cam))
        qtbot.waitUntil(lambda: bool(seen["finished"]) and seen["finished"][-1][0] is faith, timeout=120_000)
        figures = seen["finished"][-1][1]
        assert isinstance(figures, Faithfulness) and figures.class_index == 967 and 0 <= figures.deletion_auc <= 1
        assert "espresso" in figures.sentence("espresso")
    finally:
        assert worker.stop()


# ---------------------------------------------------------------- the faithfulness score
class Rig:
    """The method's slow parts alone: a gallery, the batch controller and CamMethods on a thread-less worker."""

    def __init__(self) -> None:
        self.worker = FakeWorker()
        self.messages = Messages()
        self.messages.listen(self.worker)
        self.photos = GalleryModel()
        self.batch = BatchController(self.photos, self.worker, self.messages, lambda: None)
        self.batch.set_model_state(ModelState.READY)
        self.cam = CamMethods(self.photos, self.worker, self.messages, self.batch)
        self.texts: list[str] = []
        self.cam.faithText.connect(lambda text, tip: self.texts.append(text))

    def classified(self, qtbot, n):
        new = self.batch.enqueue([(f"/p/{i}.jpg", f"/p/{i}.jpg") for i in range(n)])
        for job in self.worker.of(ClassifyJob):
            top = [TopClass(r + 1, 10 + r, f"class {10 + r}", 0.5 / (r + 1)) for r in range(5)]
            maps = np.stack([np.full((224, 224), 40 * r, np.uint8) for r in range(5)])
            self.worker.answer(job, PhotoResult(job.item_id, True, str(job.source), top=top, maps=maps,
                                                record={"path": str(job.source), "ok": True},
                                                display=QImage(4, 4, QImage.Format.Format_RGB888)))
        qtbot.waitUntil(lambda: all(p.result is not None for p in new))
        return new


def _figures(prob_hidden):
    return Faithfulness(deletion_auc=0.1, insertion_auc=0.7, random_deletion_auc=0.3, random_insertion_auc=0.4,
                        prob=0.5, prob_hidden=prob_hidden, random_prob_hidden=0.45)


def test_a_faithfulness_answer_for_a_photo_or_class_no_longer_shown_is_dropped(qtbot):
    rig = Rig()
    a, b = rig.classified(qtbot, 2)
    rig.cam.shown(a, 1)
    rig.cam.shown(a, 1)  # shown again (an update): asked once
    (job_a,) = rig.worker.of(FaithfulnessJob)
    assert (job_a.item_id, job_a.class_index, job_a.method, job_a.layer) == (a.item_id, 10, "gradcam", "layer4")
    assert job_a.cam.shape == (224, 224) and job_a.cam.dtype == np.float32 and rig.texts[-1] == COMPUTING  # no cams: the 8-bit map
    rig.cam.shown(b, 2)  # another photo and class: the first is superseded
    job_a2 = rig.worker.of(FaithfulnessJob)[-1]
    assert job_a.cancel.is_set() and job_a2.class_index == 11 and np.allclose(job_a2.cam, 40 / 255)
    rig.worker.answer(job_a, _figures(0.01))  # it finished before it saw the cancel: stale
    rig.worker.fail(job_a, CANCELLED)
    assert rig.texts[-1] == COMPUTING and "faithfulness" not in a.result.record
    rig.worker.answer(job_a2, _figures(0.05))
    assert rig.texts[-1] == ("Faithfulness: hiding the brightest 20 % of this map drops class 11 "
                             "from 50 % to 5 % (a random map: to 45 %).")
    assert "faithfulness" not in b.result.record  # Export carries the top class's figures; this was class 2
    rig.cam.shown(b, 1)
    job_b1 = rig.worker.of(FaithfulnessJob)[-1]
    rig.worker.answer(job_b1, _figures(0.2))
    assert "drops class 10 from 50 % to 20 %" in rig.texts[-1]
    assert b.result.record["faithfulness"]["prob_hidden"] == 0.2 and b.result.record["faithfulness"]["method"] == "gradcam"
    asked = len(rig.worker.of(FaithfulnessJob))
    rig.cam.shown(b, 2)  # back to a map already scored: no new job
    assert len(rig.worker.of(FaithfulnessJob)) == asked and "to 5 %" in rig.texts[-1]
    rig.cam.shown(None, 0)
    assert rig.texts[-1] == ""


def test_no_score_while_the_map_is_about_to_change(qtbot):
    rig = Rig()
    (a,) = rig.classified(qtbot, 1)
    rig.cam.shown(a, 1)
    job = rig.worker.of(FaithfulnessJob)[-1]
    rig.batch.set_method("hirescam")
    rig.batch.want_layer(a)  # the photo shown is recomputed with the new method
    assert rig.worker.of(RecomputeJob)[-1].method == "hirescam"
    rig.cam.shown(a, 1)
    assert job.cancel.is_set() and rig.texts[-1] == RECOMPUTING  # the old map's score would be of the wrong map
    rig.cam.set_method("scorecam")
    rig.batch.set_method("scorecam")
    rig.cam.want(a)
    assert rig.worker.of(ScoreCamJob) == []  # the recompute first: its answer would replace Score-CAM's maps


def test_a_failed_score_cam_says_which_map_is_shown_and_is_not_asked_again(qtbot):
    rig = Rig()
    (a,) = rig.classified(qtbot, 1)
    rig.batch.set_method("scorecam")
    rig.cam.set_method("scorecam")
    rig.cam.want(a)
    rig.cam.want(a)
    (job,) = rig.worker.of(ScoreCamJob)
    assert job.classes == (10, 11, 12, 13, 14) and job.layer == "layer4"
    rig.worker.fail(job, "not enough memory")
    assert a.note == "Could not compute Score-CAM: not enough memory. Showing Grad-CAM."
    rig.cam.want(a)
    assert len(rig.worker.of(ScoreCamJob)) == 1
    rig.cam.shown(a, 1)  # and the score of the map shown, once: a failure is said, not asked again
    rig.worker.fail(rig.worker.of(FaithfulnessJob)[-1], "/p/0.jpg does not exist")
    rig.cam.shown(a, 1)
    assert len(rig.worker.of(FaithfulnessJob)) == 1
    assert rig.texts[-2:] == ["The faithfulness score could not be computed: /p/0.jpg does not exist."] * 2


# ---------------------------------------------------------------- what leaves the window
def test_save_overlay_and_export_carry_the_method_and_the_score(qtbot, settings, photos, tmp_path, monkeypatch):
    win, factory = _open(qtbot, settings)
    try:
        _done(qtbot, win, [photos["coffee"]])
        with qtbot.waitSignal(win.photoUpdated, timeout=30_000):
            _choose(win, "gradcam++")
        qtbot.waitUntil(lambda: win.controls.top5.score.text().startswith("Faithfulness: hiding"), timeout=30_000)
        assert factory.made[0].faith_calls[-1] == (0, (7, 7))  # the top class's map, at the layer's own size
        label = win.current_photo().result.top[0].label
        seen = {}

        def dialog(parent, title, suggested, filters):
            seen["name"] = suggested
            return str(tmp_path / "out"), filters

        monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
        win.presenter.save_overlay()
        assert seen["name"].endswith(f"coffee.{label}.gradcam++.layer4.png")
        qtbot.waitUntil((tmp_path / "out.png").exists)  # written by the worker
        reader = QImageReader(str(tmp_path / "out.png"))
        assert reader.text("Method") == "Grad-CAM++" and reader.text("Layer") == "layer4"
        assert win.controller.export_results(str(tmp_path / "results.json"), "json")
        (record,) = json.loads((tmp_path / "results.json").read_text())
        assert record["cam_method"] == "gradcam++" and record["faithfulness"]["prob_hidden"] == 0.05
        assert record["faithfulness"]["method"] == "gradcam++" and record["faithfulness"]["label"] == label
        assert win.controller.export_results(str(tmp_path / "results.csv"), "csv")
        with (tmp_path / "results.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows[0]["cam_method"] == "gradcam++" and rows[0]["faithfulness.prob_hidden"] == "0.05"
        assert all(t != GUI for t in factory.made[0].threads)
    finally:
        win.close()


@pytest.fixture(autouse=True)
def _no_dialogs(monkeypatch):
    """A failure nobody handles opens a dialog: none is expected here."""
    from resnext_gui.ui.messages import Messages

    def refuse(self, title, text):
        raise AssertionError(f"unexpected dialog: {title}: {text}")

    monkeypatch.setattr(Messages, "warning", refuse)


def test_the_score_cam_bar_tells_the_time_left_from_the_rate_so_far(qtbot, settings):
    """The status bar's Score-CAM bar, in the window, on a clock the test moves: 1.5 s for each pass of 16 maps."""
    from resnext_gui.ui.main_window import MainWindow
    from resnext_gui.worker.jobs.model import LoadJob
    from resnext_gui.worker.results import ModelInfo

    win = MainWindow(device="cpu", settings=settings, worker=FakeWorker())
    qtbot.addWidget(win)
    now = [100.0]
    win.score_bar.time_left.clock = lambda: now[0]
    win.show()
    win.model.start()
    win.worker.answer(win.worker.of(LoadJob)[-1], ModelInfo("CPU · OpenVINO", "cpu", "w", "w.pth", 1000, False, 1.0))
    (photo,) = win.controller.enqueue([("/p/0.jpg", "0.jpg")])
    (job,) = win.worker.of(ClassifyJob)
    top = [TopClass(r + 1, 10 + r, f"class {10 + r}", 0.5 / (r + 1)) for r in range(5)]
    win.worker.answer(job, PhotoResult(job.item_id, True, "/p/0.jpg", top=top, maps=np.zeros((5, 224, 224), np.uint8),
                                       record={"path": "/p/0.jpg", "ok": True},
                                       display=QImage(4, 4, QImage.Format.Format_RGB888)))
    qtbot.waitUntil(lambda: photo.result is not None)
    win.select(photo)
    _choose(win, "scorecam")
    (score,) = win.worker.of(ScoreCamJob)
    bar = win.score_bar
    assert bar.isVisible() and bar.label.text() == "Score-CAM"
    now[0] += 40.0  # the activation maps' own pass and the wait before: not passes of the masks
    win.worker.report(score, 16, 2048)
    assert bar.label.text() == "Score-CAM"  # one pass shows no rate yet
    for done in (32, 48):
        now[0] += 1.5
        win.worker.report(score, done, 2048)
    assert bar.label.text() == "Score-CAM · about 3 min left"  # 2000 maps at 1.5 s a 16: 187.5 s
    for done in range(64, 2049 - 16 * 4, 16):
        now[0] += 1.5
        win.worker.report(score, done, 2048)
    assert bar.bar.value() == 1984 and bar.label.text() == "Score-CAM · a few seconds left"  # 4 passes: 6 s
    win.presenter.cam.cancel_score()
    assert not bar.isVisible() and bar.label.text() == "Score-CAM"
    win.close()
