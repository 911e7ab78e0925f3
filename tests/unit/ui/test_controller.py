"""The batch controller (ui/controller.py) with a fake worker and no window: queueing, answers, Stop, Clear, Undo,
Retry, Remove, what was asked for, and progress."""

import json
import os
import stat

import pytest
from PySide6.QtGui import QImage

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.controller import BatchController, ModelState
from resnext_gui.ui.gallery import GalleryModel, Status
from resnext_gui.ui.messages import Messages
from resnext_gui.worker.jobs.photo import ClassifyJob, RecomputeJob, ViewJob
from resnext_gui.worker.results import PhotoResult
from tests.support.ui_fakes import FakeWorker


class Rig:
    def __init__(self) -> None:
        self.worker = FakeWorker()
        self.messages = Messages()
        self.messages.listen(self.worker)
        self.photos = GalleryModel()
        self.current = None
        self.ctl = BatchController(self.photos, self.worker, self.messages, lambda: self.current)
        self.ctl.set_model_state(ModelState.READY)
        self.status: list[str] = []
        self.messages.status.connect(lambda text, ms: self.status.append(text))
        self.progress: list[tuple[int, int]] = []
        self.ctl.progressChanged.connect(lambda done, total: self.progress.append((done, total)))
        self.updated: list[int] = []
        self.ctl.updated.connect(lambda photo: self.updated.append(photo.item_id))
        self.selected: list = []
        self.ctl.selectWanted.connect(lambda photo, focus: self.selected.append(photo))

    def add(self, n: int):
        return self.ctl.enqueue([(f"/p/{i}.jpg", f"/p/{i}.jpg") for i in range(n)])

    def ok(self, job, layer="layer4"):
        return PhotoResult(job.item_id, True, str(job.source), top=[TopClass(1, 0, "tabby", 0.9)], layer=layer,
                           maps=None, record={"path": str(job.source), "ok": True},
                           display=QImage(4, 4, QImage.Format.Format_RGB888))


@pytest.fixture
def rig(qtbot):
    return Rig()


def test_photos_are_queued_once_and_the_first_new_one_is_selected(rig):
    new = rig.add(3)
    assert [j.item_id for j in rig.worker.of(ClassifyJob)] == [p.item_id for p in new]
    assert rig.selected == [new[0]] and rig.progress[-1] == (0, 3)
    rig.ctl.enqueue([("/p/1.jpg", "/p/1.jpg")])
    assert len(rig.worker.of(ClassifyJob)) == 3 and rig.status[-1] == "1 photo is already in the gallery."


def test_answers_and_failures_land_on_their_photos_and_the_progress_follows(qtbot, rig):
    a, b = rig.add(2)
    job_a, job_b = rig.worker.of(ClassifyJob)
    rig.worker.answer(job_a, rig.ok(job_a))
    rig.worker.fail(job_b, "internal error: MemoryError()")
    qtbot.waitUntil(lambda: len(rig.updated) == 2)
    assert a.status is Status.DONE and b.status is Status.FAILED and b.error == "internal error: MemoryError()"
    assert b.result.record == {"path": "/p/1.jpg", "ok": False, "error": "internal error: MemoryError()"}
    assert rig.progress[-2:] == [(1, 2), (2, 0)]  # the bar goes once the batch is answered


def test_no_progress_bar_without_a_model(rig):
    rig.ctl.set_model_state(ModelState.MISSING)
    rig.add(3)
    assert rig.progress[-1] == (0, 0) and rig.photos.waiting_text == "Waiting for weights"


def test_stop_marks_what_had_not_started_and_says_what_still_runs(rig):
    rig.add(4)
    running = rig.worker.waiting.pop(0)  # the worker took the first photo already
    rig.ctl.stop()
    counts = rig.photos.counts()
    assert counts[Status.STOPPED] == 3 and counts[Status.QUEUED] == 1
    assert rig.status[-1] == "Stopped 3 photos before classification. 1 already in progress will finish."
    assert rig.photos.get(running.item_id).status is Status.QUEUED


def test_clear_then_undo_brings_the_photos_back_once(qtbot, rig):
    new = rig.add(2)
    cleared = []
    rig.ctl.cleared.connect(lambda: cleared.append(True))
    rig.ctl.clear()
    assert len(rig.photos) == 0 and cleared and rig.ctl.can_undo() and rig.status[-1] == "Cleared 2 photos. Undo with Ctrl+Z."
    assert rig.ctl.undo_text() == "Undo Clear"
    rig.ctl.undo()
    assert [p.item_id for p in rig.photos] == [p.item_id for p in new] and not rig.ctl.can_undo()
    assert rig.selected[-1] is new[0] and rig.status[-1] == "Brought back 2 photos."
    rig.ctl.undo()  # nothing more to undo
    assert len(rig.photos) == 2


def test_an_answer_for_a_cleared_photo_is_dropped(qtbot, rig):
    rig.add(1)
    (job,) = rig.worker.of(ClassifyJob)
    rig.ctl.clear()
    rig.worker.answer(job, rig.ok(job))
    qtbot.wait(0)
    assert len(rig.photos) == 0 and rig.updated == []


def test_removing_a_waiting_photo_does_not_leave_the_bar_waiting_for_it(qtbot, rig):
    a, b = rig.add(2)
    rig.ctl.remove(b)
    assert rig.progress[-1] == (0, 0)  # one photo left in the batch: no bar for one
    job_a = rig.worker.of(ClassifyJob)[0]
    rig.worker.answer(job_a, rig.ok(job_a))
    qtbot.waitUntil(lambda: a.status is Status.DONE)
    assert rig.progress[-1] == (1, 0) and [p.item_id for p in rig.photos] == [a.item_id]
    assert rig.status[-1] == "Removed /p/1.jpg from the gallery. Undo with Ctrl+Z."


def test_removed_photos_come_back_where_they_were_with_ctrl_z(qtbot, rig):
    a, b, c, d = rig.add(4)
    rig.ctl.remove([d, b])  # a selection, in any order
    assert list(rig.photos) == [a, c] and rig.status[-1] == "Removed 2 photos from the gallery. Undo with Ctrl+Z."
    rig.ctl.remove(a)
    assert list(rig.photos) == [c] and rig.ctl.undo_text() == "Undo Remove"
    rig.ctl.undo()
    assert list(rig.photos) == [a, c] and rig.selected[-1] is a
    rig.ctl.undo()
    assert list(rig.photos) == [a, b, c, d] and not rig.ctl.can_undo() and rig.status[-1] == "Brought back 2 photos."
    assert [p.status for p in rig.photos] == [Status.STOPPED, Status.STOPPED, Status.QUEUED, Status.STOPPED]
    assert rig.photos.counts()[Status.STOPPED] == 3  # those removed lost their place in the worker's line
    rig.ctl.enqueue([("/p/1.jpg", "/p/1.jpg")])
    assert len(rig.photos) == 4  # back in the gallery means known again: not added twice


def test_retry_takes_every_failed_or_stopped_photo_unless_several_are_selected(qtbot, rig):
    a, b, c, d = rig.add(4)
    for job in rig.worker.of(ClassifyJob)[:3]:
        rig.worker.fail(job, "broken")
    qtbot.waitUntil(lambda: sum(p.status is Status.FAILED for p in rig.photos) == 3)
    rig.ctl.stop()  # d had not started: stopped
    rig.current = b  # the photo shown is one of them: still all of them are tried again
    rig.ctl.retry()
    assert [j.item_id for j in rig.worker.of(ClassifyJob)[-4:]] == [a.item_id, b.item_id, c.item_id, d.item_id]
    assert rig.status[-1] == "Trying 4 failed or stopped photos again."
    for job in rig.worker.of(ClassifyJob)[-4:]:
        rig.worker.fail(job, "broken")
    qtbot.waitUntil(lambda: all(p.status is Status.FAILED for p in rig.photos))
    rig.ctl.selection = lambda: [c, a]  # Shift/Ctrl+click chose two
    rig.ctl.retry()
    assert [j.item_id for j in rig.worker.of(ClassifyJob)[-2:]] == [c.item_id, a.item_id]
    assert rig.status[-1] == "Trying 2 selected photos again." and b.status is Status.FAILED
    rig.ctl.retry()
    assert rig.status[-1] == "Nothing to retry: no failed or stopped photos among those selected."


def test_another_layer_is_asked_for_once_and_a_failure_is_not_asked_again(qtbot, rig):
    (photo,) = rig.add(1)
    (job,) = rig.worker.of(ClassifyJob)
    rig.worker.answer(job, rig.ok(job))
    qtbot.waitUntil(lambda: photo.status is Status.DONE)
    rig.ctl.want_layer(photo)
    assert rig.worker.of(RecomputeJob) == []  # already the layer chosen
    rig.ctl.set_layer("layer3")
    rig.ctl.want_layer(photo)
    rig.ctl.want_layer(photo)
    (asked,) = rig.worker.of(RecomputeJob)
    assert rig.ctl.layer_pending(photo)
    rig.worker.fail(asked, "The file is gone.")
    assert "Could not compute the new heatmap: The file is gone. Showing the last stage map." == photo.note
    rig.ctl.want_layer(photo)
    assert len(rig.worker.of(RecomputeJob)) == 1 and not rig.ctl.layer_pending(photo)
    rig.ctl.set_layer("layer3")  # chosen again: one more try
    rig.ctl.want_layer(photo)
    assert len(rig.worker.of(RecomputeJob)) == 2


def test_export_s_time_is_the_classification_s_own_after_the_photo_was_shown_with_another_map(qtbot, rig, tmp_path):
    import csv

    first, second = rig.add(2)
    for job, ms in zip(rig.worker.of(ClassifyJob), (96.0, 104.0)):
        res = rig.ok(job)
        res.record = {"path": str(job.source), "ok": True, "device": "cpu", "ms": ms,
                      "top": [{"rank": 1, "index": 0, "label": "tabby", "prob": 0.9}]}
        rig.worker.answer(job, res)
    qtbot.waitUntil(lambda: len(rig.updated) == 2)
    rig.ctl.set_layer("layer2")
    rig.ctl.set_method("layercam")
    rig.ctl.want_layer(first)  # the photo is clicked: its map is recomputed, which takes long (a decode, two passes)
    (job,) = rig.worker.of(RecomputeJob)
    again = rig.ok(job, layer="layer2")
    again.method = "layercam"
    again.record = {"path": str(job.source), "ok": True, "device": "cpu", "ms": 1691.0, "cam_method": "layercam",
                    "top": [{"rank": 1, "index": 0, "label": "tabby", "prob": 0.9}]}
    rig.worker.answer(job, again)
    assert first.result.layer == "layer2"
    assert rig.ctl.export_results(str(tmp_path / "r.csv"))
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["ms"]) for r in rows] == [96.0, 104.0]  # the classification's own time, not the re-view's
    assert [r["cam_method"] for r in rows] == ["layercam", ""]  # the maps it shows now are Layer-CAM's


def test_photos_the_library_holds_are_answered_a_chunk_a_job_and_stop_drops_the_chunks_not_started(qtbot, rig):
    from resnext_gui.worker.jobs.photo import StoredAnswersJob
    from resnext_gui.worker.results import StoredAnswers

    photos = rig.ctl.enqueue([(f"/p/{i}.jpg", f"/p/{i}.jpg") for i in range(250)], known=True)
    rig.current = photos[0]
    chunks = rig.worker.of(StoredAnswersJob)
    assert [len(j.photos) for j in chunks] == [100, 100, 50] and rig.worker.of(ClassifyJob) == []
    assert [i for j in chunks for i, _ in j.photos] == [p.item_id for p in photos]  # in gallery order
    found = [rig.ok(SimpleJob(item_id, path)) for item_id, path in chunks[0].photos[:99]]
    rig.worker.answer(chunks[0], StoredAnswers(found, [photos[99].item_id]))
    assert photos[0].status is Status.DONE  # the photo on screen at once, not after the others of its chunk
    assert [j.item_id for j in rig.worker.of(ClassifyJob)] == [photos[99].item_id]  # the one it did not hold
    qtbot.waitUntil(lambda: all(p.status is Status.DONE for p in photos[:99]))
    rig.worker.waiting.remove(chunks[1])  # the worker has taken the second chunk: its answer still comes
    rig.ctl.stop()  # the chunk not started and the photo to classify are dropped: stopped, not waiting forever
    assert [p.status for p in photos[99:100] + photos[200:]] == [Status.STOPPED] * 51
    found = [rig.ok(SimpleJob(item_id, path)) for item_id, path in chunks[1].photos[1:]]
    rig.worker.answer(chunks[1], StoredAnswers(found, [photos[100].item_id]))
    qtbot.waitUntil(lambda: all(p.status is Status.DONE for p in photos[101:200]))
    assert photos[100].status is Status.STOPPED and len(rig.worker.of(ClassifyJob)) == 1  # not classified after Stop


class SimpleJob:
    def __init__(self, item_id, source):
        self.item_id, self.source = item_id, source


def test_a_full_view_is_asked_once_and_again_only_when_the_photo_is_chosen_again(qtbot, rig):
    (photo,) = rig.add(1)
    rig.ctl.want_view(photo)
    rig.ctl.want_view(photo)
    (view,) = rig.worker.of(ViewJob)
    rig.worker.fail(view, "gone")
    rig.ctl.want_view(photo)
    assert len(rig.worker.of(ViewJob)) == 1 and photo.note.startswith("Could not show the full photo: gone")
    rig.ctl.selected(photo)
    rig.ctl.want_view(photo)
    assert len(rig.worker.of(ViewJob)) == 2


def test_export_to_a_folder_that_is_not_there_is_a_warning(qtbot, rig, tmp_path):
    assert not rig.ctl.export_results(str(tmp_path / "missing" / "r.csv"))
    box = rig.messages.last_message
    assert box.windowTitle() == "Export failed" and str(tmp_path / "missing" / "r.csv") in box.text()
    box.close()
    assert rig.ctl.export_results(str(tmp_path / "r"), "json") and (tmp_path / "r.json").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_export_honours_the_umask_like_any_program_s_file(qtbot, rig, tmp_path, umask):
    rig.add(1)
    (job,) = rig.worker.of(ClassifyJob)
    rig.worker.answer(job, rig.ok(job))
    qtbot.waitUntil(lambda: len(rig.updated) == 1)
    old = os.umask(umask)
    try:
        assert rig.ctl.export_results(str(tmp_path / "r.csv"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "r.csv").st_mode) == 0o666 & ~umask


def test_export_of_only_some_photos_writes_theirs_and_says_so(qtbot, rig, tmp_path):
    photos = rig.add(3)
    for job in rig.worker.of(ClassifyJob):
        rig.worker.answer(job, rig.ok(job))
    qtbot.waitUntil(lambda: len(rig.updated) == 3)
    assert rig.ctl.export_results(str(tmp_path / "r.json"), only={photos[0].item_id, photos[2].item_id})
    written = json.loads((tmp_path / "r.json").read_text())
    assert [r["path"] for r in written] == [str(photos[0].source), str(photos[2].source)]
    assert rig.status[-1] == f"Exported 2 results of the photos the gallery shows to {tmp_path / 'r.json'}"


def test_stopped_photos_given_again_go_back_in_line_with_the_map_chosen(qtbot, rig):
    rig.ctl.set_layer("layer3")
    rig.ctl.set_method("eigencam")  # a one-pass method: every photo of the batch gets its maps
    photos = rig.add(4)
    rig.worker.waiting.pop(0)  # the worker took the first photo already: it is not stopped
    rig.ctl.stop()
    assert rig.photos.counts()[Status.STOPPED] == 3
    asked = len(rig.worker.of(ClassifyJob))
    rig.status.clear()
    rig.add(4)  # the same folder dropped again
    again = rig.worker.of(ClassifyJob)[asked:]
    assert [j.item_id for j in again] == [p.item_id for p in photos[1:]]
    assert {(j.layer, j.method) for j in rig.worker.of(ClassifyJob)} == {("layer3", "eigencam")}  # as first asked
    assert rig.photos.counts()[Status.QUEUED] == 4 and len(rig.photos) == 4
    assert rig.status == ["1 photo is already in the gallery."] and rig.progress[-1] == (0, 3)
