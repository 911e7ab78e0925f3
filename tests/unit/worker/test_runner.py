"""The worker (worker/runner.py, worker/queue.py): three lanes (what the user asks for first, then batch photos and
the score of the photo shown in turn), one answer per job to the callbacks it was sent with, and the thread stops
cleanly."""

import inspect
import threading

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal, Slot

from resnext_gui.worker.jobs.model import LoadJob
from resnext_gui.worker.jobs.photo import ClassifyJob, FaithfulnessJob, RecomputeJob, SaveImageJob, ViewJob
from resnext_gui.worker.jobs.teach import SaveModelJob, TrainJob
from resnext_gui.worker.queue import CANCELLED
from resnext_gui.worker.results import ModelInfo
from resnext_gui.worker.runner import ClassifierLike, Worker
from tests.support.helpers import copies
from tests.support.qt_fixtures import start_worker
from tests.support.ui_fakes import FakeClassifier, FakeFactory


def protocol_members(protocol: type) -> set[str]:
    return {n for n in vars(protocol) if not n.startswith("_")} | set(getattr(protocol, "__annotations__", {}))


def parameters(member) -> list[tuple[str, object]]:
    """A callable's parameters as (name, kind, default), self and annotations left out."""
    sig = inspect.signature(member)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_the_fake_classifier_has_every_member_the_worker_uses_with_the_same_parameters():
    members = protocol_members(ClassifierLike)
    assert {"classify", "labels", "source", "backend", "device", "precision", "note", "load_ms", "prepare",
            "score_cams", "faithfulness_passes"} <= members
    fake = FakeClassifier("w.pth", "cpu")
    assert [n for n in sorted(members) if not hasattr(fake, n)] == []
    for name in sorted(members):
        wanted = getattr(ClassifierLike, name, None)
        if inspect.isfunction(wanted):  # a method: called with the same names, kinds and defaults
            assert parameters(getattr(fake, name)) == parameters(wanted), name


def test_the_fake_worker_is_held_to_the_worker_s_protocol():
    from resnext_gui.worker.runner import WorkerLike
    from tests.support.ui_fakes import FakeWorker

    fake, real = FakeWorker(), Worker()  # not started: no thread runs
    members = protocol_members(WorkerLike)
    assert {"submit", "cancel", "cancel_batch", "keep_gallery", "first_model", "unheard", "loading"} <= members
    for name in sorted(members):
        assert hasattr(fake, name) and hasattr(real, name), name
        wanted = getattr(WorkerLike, name, None)
        if inspect.isfunction(wanted):  # the same names, kinds and defaults as the protocol and the real worker
            assert parameters(getattr(fake, name)) == parameters(wanted) == parameters(getattr(real, name)), name


class Recorder(QObject):
    """Collects the worker's answers on the GUI thread, in the order they arrive."""

    changed = Signal()

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.events: list[tuple] = []
        worker.finished.connect(self.finished)
        worker.failed.connect(self.failed)

    def _add(self, *event) -> None:
        self.events.append(event)
        self.changed.emit()

    @Slot(object, object)
    def finished(self, job, result):
        if isinstance(job, LoadJob):
            self._add("ready", result.weights) if isinstance(result, ModelInfo) else self._add("missing", result.reason)
        elif isinstance(job, ClassifyJob):
            self._add("classified", result.item_id, result.ok)
        elif isinstance(job, RecomputeJob):
            self._add("recomputed", result.item_id, result.layer)
        elif isinstance(job, ViewJob):
            self._add("view", job.item_id, result.isNull())
        else:
            self._add(type(job).__name__, result)

    @Slot(object, str)
    def failed(self, job, message):
        self._add(f"{type(job).__name__} failed", getattr(job, "item_id", None), message)


@pytest.fixture
def gated(qtbot):
    gate = threading.Event()
    factory = FakeFactory(gate)
    worker = Worker("first.pth", "cpu", classifier_factory=factory)
    rec = Recorder(worker)
    with qtbot.waitSignal(rec.changed, timeout=60_000):
        start_worker(worker)
    assert rec.events == [("ready", "fake weights first.pth")]
    yield worker, factory, gate, rec
    gate.set()
    assert worker.stop()


def test_what_the_user_asks_for_goes_before_the_waiting_batch(qtbot, gated, photos, tmp_path):
    worker, factory, gate, rec = gated
    files = copies([photos["coffee"]], 8, tmp_path)
    for i, f in enumerate(files, start=1):
        worker.submit(ClassifyJob(i, str(f)))
    qtbot.waitUntil(factory.made[0].busy.is_set)  # photo 1 is being computed; 2-8 wait
    worker.submit(ViewJob(5, str(files[4])))
    worker.submit(RecomputeJob(3, str(files[2]), "layer3"))
    worker.submit(LoadJob("second.pth", "cpu", True))
    gate.set()
    qtbot.waitUntil(lambda: sum(e[0] == "classified" for e in rec.events) == 8, timeout=60_000)
    got = [e[:2] for e in rec.events[1:]]
    assert got[:4] == [("classified", 1), ("view", 5), ("recomputed", 3), ("ready", "fake weights second.pth")]
    assert got[4:] == [("classified", i) for i in range(2, 9)]
    # the switch took effect for the rest of the queue: photos 2-8 went to the second model
    assert [name for name, _ in factory.made[1].calls] == [f.name for f in files[1:]]
    assert factory.made[0].calls == [(files[0].name, "layer4"), (files[2].name, "layer3")]


def test_every_job_answers_once_and_a_failure_says_why(qtbot, gated, tmp_path):
    worker, factory, gate, rec = gated
    gate.set()
    missing = str(tmp_path / "gone.jpg")
    jobs = [worker.submit(ClassifyJob(1, missing)), worker.submit(ViewJob(2, missing)), worker.submit(RecomputeJob(3, missing, "layer3")),
            worker.submit(SaveModelJob(str(tmp_path / "no-model.pth"), str(tmp_path / "copy.pth")))]
    qtbot.waitUntil(lambda: len(rec.events) == 1 + len(jobs), timeout=30_000)
    kinds = {e[0]: e for e in rec.events[1:]}
    assert kinds["classified"][1:] == (1, False)  # a file that can't be read is an answer: "not classified"
    assert "does not exist" in kinds["ViewJob failed"][2] and kinds["ViewJob failed"][1] == 2
    assert "does not exist" in kinds["RecomputeJob failed"][2] and kinds["RecomputeJob failed"][1] == 3
    assert kinds["SaveModelJob failed"][2].startswith(f"Could not save {tmp_path / 'copy.pth'}")


def test_a_fault_inside_a_job_is_reported_not_lost(qtbot, gated, photos, monkeypatch):
    worker, factory, gate, rec = gated
    gate.set()

    def broken(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(factory.made[0], "classify", broken)
    with qtbot.waitSignal(rec.changed, timeout=30_000):
        worker.submit(RecomputeJob(4, str(photos["coffee"]), "layer3"))
    assert rec.events[-1][:2] == ("RecomputeJob failed", 4) and "MemoryError" in rec.events[-1][2]
    with qtbot.waitSignal(rec.changed, timeout=30_000):
        worker.submit(ClassifyJob(5, str(photos["coffee"])))
    assert rec.events[-1][:2] == ("ClassifyJob failed", 5) and "MemoryError" in rec.events[-1][2]


def test_cancel_batch_drops_waiting_photos_and_the_thread_stops(qtbot, gated, photos, tmp_path):
    worker, factory, gate, rec = gated
    for i, f in enumerate(copies([photos["chelsea"]], 6, tmp_path), start=1):
        worker.submit(ClassifyJob(i, str(f)))
    qtbot.waitUntil(factory.made[0].busy.is_set)
    assert [job.item_id for job in worker.cancel_batch()] == [2, 3, 4, 5, 6]
    gate.set()
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=30_000)
    assert rec.events[1] == ("classified", 1, True)
    assert worker.stop() and not worker.is_running()


def test_backend_and_precision_reach_the_classifier_and_its_runtime_reaches_the_status(qtbot, tmp_path):
    factory = FakeFactory()
    worker = Worker(str(tmp_path / "w.pth"), "cpu", classifier_factory=factory, backend="torch", precision="bf16")
    infos = []
    worker.finished.connect(lambda job, res: infos.append(res) if isinstance(job, LoadJob) else None)
    rec = Recorder(worker)  # connected after: infos holds the answer when rec.changed is seen
    loading = []
    worker.loading.connect(loading.append)
    try:
        with qtbot.waitSignal(rec.changed, timeout=20000):
            start_worker(worker)
        assert factory.options[0]["backend"] == "torch" and factory.options[0]["precision"] == "bf16"
        assert infos[0].backend == "torch" and infos[0].device.endswith("· PyTorch bf16")
        factory.options[0]["progress"]("Converting the model for OpenVINO…")
        qtbot.waitUntil(lambda: loading[-1:] == ["Converting the model for OpenVINO…"], timeout=5000)
        with qtbot.waitSignal(rec.changed, timeout=20000):
            worker.submit(LoadJob(worker.first_model.weights, "cpu", True, backend="openvino", precision="fp32"))
        assert factory.options[1]["backend"] == "openvino" and factory.options[1]["precision"] == "fp32"
        # what the classifier says it runs (not what was asked for) is what the window shows
        assert infos[1].backend == "openvino" and infos[1].device.endswith("· OpenVINO")
        with qtbot.waitSignal(rec.changed, timeout=20000):
            worker.submit(LoadJob(worker.first_model.weights, "cpu", True))  # None: the runtime and precision chosen last
        assert factory.options[2]["backend"] == "openvino" and factory.options[2]["precision"] == "fp32"
    finally:
        assert worker.stop()


def test_a_start_without_weights_answers_missing_and_jobs_that_need_a_model_say_so(qtbot, monkeypatch):
    from resnext_gui.core.errors import NoWeightsError, WeightsError

    def no_weights(weights, device, **options):
        if weights is None:
            raise NoWeightsError("No weights: run `resnext-gui weights fetch`.")
        raise WeightsError(f"{weights} is empty")

    worker = Worker(None, "cpu", classifier_factory=no_weights)
    rec = Recorder(worker)
    try:
        with qtbot.waitSignal(rec.changed, timeout=20000):
            start_worker(worker)
        assert rec.events == [("missing", "No weights: run `resnext-gui weights fetch`.")]
        with qtbot.waitSignal(rec.changed, timeout=20000):
            worker.submit(TrainJob("/nowhere"))
        assert rec.events[-1][0] == "TrainJob failed" and "No model is loaded" in rec.events[-1][2]
        with qtbot.waitSignal(rec.changed, timeout=20000):
            worker.submit(LoadJob("/nowhere/mine.pth", "cpu", True))  # the user's own choice: a failure, not "missing"
        assert rec.events[-1] == ("LoadJob failed", None, "/nowhere/mine.pth is empty")
    finally:
        assert worker.stop()


def test_a_save_and_the_batch_go_between_the_passes_of_the_score_of_the_photo_shown(qtbot, gated, photos, tmp_path):
    from PySide6.QtGui import QImage

    worker, factory, gate, rec = gated
    gate.set()
    fake = factory.made[0]
    fake.faith_hold = hold = threading.Event()
    faith = worker.submit(FaithfulnessJob(9, str(photos["coffee"]), 3, np.zeros((7, 7), np.float32)))
    qtbot.waitUntil(fake.faith_in_pass.is_set)  # its first pass is being computed
    files = copies([photos["coffee"]], 2, tmp_path)
    worker.submit(ClassifyJob(1, str(files[0])))
    worker.submit(ClassifyJob(2, str(files[1])))
    image = QImage(4, 3, QImage.Format.Format_RGB32)
    image.fill(0)
    worker.submit(SaveImageJob(str(tmp_path / "o.png"), image, {}))
    hold.set()
    qtbot.waitUntil(lambda: any(e[0] == "FaithfulnessJob" for e in rec.events), timeout=60_000)
    assert [e[0] for e in rec.events[1:]] == ["SaveImageJob", "classified", "classified", "FaithfulnessJob"]
    assert rec.events[-1][1].class_index == 3 and fake.faith_passes == 4 and faith.cancel.is_set() is False


def test_a_score_cancelled_or_outlived_by_its_model_stops_before_its_next_pass(qtbot, gated, photos):
    worker, factory, gate, rec = gated
    gate.set()
    fake = factory.made[0]
    fake.faith_hold = hold = threading.Event()
    cam = np.zeros((7, 7), np.float32)
    job = worker.submit(FaithfulnessJob(9, str(photos["coffee"]), 3, cam))
    qtbot.waitUntil(fake.faith_in_pass.is_set)
    worker.cancel(job)
    hold.set()
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=60_000)
    assert rec.events[1] == ("FaithfulnessJob failed", 9, CANCELLED) and fake.faith_passes == 1
    hold.clear()
    fake.faith_in_pass.clear()
    worker.submit(FaithfulnessJob(9, str(photos["coffee"]), 3, cam))
    qtbot.waitUntil(fake.faith_in_pass.is_set)
    worker.submit(LoadJob("second.pth", "cpu", True))  # waits for the pass under way, then goes before the next one
    hold.set()
    qtbot.waitUntil(lambda: len(rec.events) == 4, timeout=60_000)
    assert rec.events[2] == ("ready", "fake weights second.pth")
    assert rec.events[3] == ("FaithfulnessJob failed", 9, "another model was loaded meanwhile")
    assert fake.faith_passes == 2 and factory.made[1].faith_calls == []


def test_image_data_without_a_file_is_encoded_as_png_for_the_core(qtbot):
    from PySide6.QtGui import QColor, QImage

    from resnext_gui.worker.images import qimage_to_png_bytes

    image = QImage(5, 3, QImage.Format.Format_RGB32)
    image.fill(QColor(10, 200, 30))
    data = qimage_to_png_bytes(image)
    back = QImage.fromData(data)
    assert data.startswith(b"\x89PNG") and (back.width(), back.height()) == (5, 3)
    assert back.pixelColor(2, 1) == QColor(10, 200, 30)


def test_the_view_s_full_decode_has_every_pixel_and_its_display_copy_is_reduced(tmp_path):
    from PIL import Image

    from resnext_gui.worker.images import DISPLAY_MAX_SIDE

    big = tmp_path / "big.jpg"
    Image.new("RGB", (3 * DISPLAY_MAX_SIDE, 2 * DISPLAY_MAX_SIDE), (90, 120, 30)).save(big)
    reduced = ViewJob(1, str(big)).run(None)
    full = ViewJob(1, str(big), full=True).run(None)
    assert max(reduced.width(), reduced.height()) <= DISPLAY_MAX_SIDE
    assert (full.width(), full.height()) == (3 * DISPLAY_MAX_SIDE, 2 * DISPLAY_MAX_SIDE)


def test_save_overlay_is_encoded_and_written_on_the_worker_thread(qtbot, gated, tmp_path, monkeypatch):
    from PySide6.QtGui import QImage, QImageReader

    import resnext_gui.worker.jobs.photo as worker_module

    worker, factory, gate, rec = gated
    gate.set()
    threads = []
    real = worker_module.write_png
    monkeypatch.setattr(worker_module, "write_png", lambda *a: threads.append(threading.current_thread()) or real(*a))
    image = QImage(30, 20, QImage.Format.Format_RGB32)
    image.fill(0x336699)
    out = tmp_path / "overlay.png"
    worker.submit(SaveImageJob(str(out), image, {"Class": "tabby"}))
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=30_000)
    assert rec.events[1] == ("SaveImageJob", str(out))
    assert threads and threads[0] is not threading.main_thread()
    assert QImageReader(str(out)).text("Class") == "tabby" and QImage(str(out)).pixel(3, 3) == image.pixel(3, 3)


def test_an_exception_inside_a_job_reaches_the_log_with_its_traceback_and_the_message_names_the_log(
        qtbot, gated, photos, tmp_path, monkeypatch):
    from resnext_gui.core import logs

    worker, factory, gate, rec = gated
    gate.set()
    log = logs.to_file(tmp_path / "state")
    try:
        def broken(*args, **kwargs):
            raise ZeroDivisionError("a bug deep in the model")

        monkeypatch.setattr(factory.made[0], "classify", broken)
        heard = []
        with qtbot.waitSignal(rec.changed, timeout=30_000):
            worker.submit(RecomputeJob(4, str(photos["coffee"]), "layer3"), on_fail=heard.append)
        assert heard == [f"internal error: ZeroDivisionError('a bug deep in the model'); details are in the log: {log}"]
        text = log.read_text()
        assert "RecomputeJob failed unexpectedly" in text and "Traceback (most recent call last)" in text
        assert "ZeroDivisionError: a bug deep in the model" in text and "in broken" in text
    finally:
        logs.stop()
