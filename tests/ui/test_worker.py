"""The worker: two lanes (what the user asks for first), every job kind answers, and the thread stops cleanly."""

import threading

import pytest
from PySide6.QtCore import QObject, Signal, Slot

from resnext_gui.worker import ClassifyJob, JobQueue, LoadJob, ViewJob, Worker
from tests.helpers import copies
from tests.ui.fakes import FakeFactory


def test_job_queue_serves_interactive_jobs_first_and_batch_only_with_a_model():
    q = JobQueue()
    assert q.put(ClassifyJob(1, "a.jpg"), interactive=False) is True  # the worker needs waking
    assert q.put(ClassifyJob(2, "b.jpg"), interactive=False) is False  # already awake
    q.put(ViewJob(7, "g.jpg"), interactive=True)
    q.put(LoadJob("w.pth"), interactive=True)
    assert [type(q.take(batch_allowed=False)).__name__ for _ in range(2)] == ["ViewJob", "LoadJob"]
    assert q.take(batch_allowed=False) is None  # batch photos wait for a model
    assert q.wake_if_needed(batch_allowed=True) is True
    assert q.take(batch_allowed=True).item_id == 1
    assert q.drop_batch() == [2] and q.pending_batch() == 0


class Recorder(QObject):
    """Collects the worker's answers on the GUI thread, in the order they arrive."""

    changed = Signal()

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.events: list[tuple] = []
        worker.modelReady.connect(self.ready)
        worker.classified.connect(self.classified)
        worker.recomputed.connect(self.recomputed)
        worker.recomputeFailed.connect(self.recompute_failed)
        worker.viewReady.connect(self.view)
        worker.viewFailed.connect(self.view_failed)
        worker.modelFailed.connect(self.model_failed)

    def _add(self, *event) -> None:
        self.events.append(event)
        self.changed.emit()

    @Slot(object)
    def ready(self, info):
        self._add("ready", info.weights)

    @Slot(object)
    def classified(self, res):
        self._add("classified", res.item_id, res.ok)

    @Slot(object)
    def recomputed(self, res):
        self._add("recomputed", res.item_id, res.layer)

    @Slot(int, str)
    def recompute_failed(self, item_id, message):
        self._add("recompute failed", item_id, message)

    @Slot(int, object)
    def view(self, item_id, image):
        self._add("view", item_id, image.isNull())

    @Slot(int, str)
    def view_failed(self, item_id, message):
        self._add("view failed", item_id, message)

    @Slot(str)
    def model_failed(self, message):
        self._add("model failed", message)


@pytest.fixture
def gated(qtbot):
    gate = threading.Event()
    factory = FakeFactory(gate)
    worker = Worker("first.pth", "cpu", classifier_factory=factory)
    rec = Recorder(worker)
    with qtbot.waitSignal(rec.changed, timeout=60_000):
        worker.start()
    assert rec.events == [("ready", "fake weights first.pth")]
    yield worker, factory, gate, rec
    gate.set()
    assert worker.stop()


def test_what_the_user_asks_for_goes_before_the_waiting_batch(qtbot, gated, photos, tmp_path):
    worker, factory, gate, rec = gated
    files = copies([photos["coffee"]], 8, tmp_path)
    for i, f in enumerate(files, start=1):
        worker.classify(i, str(f))
    qtbot.waitUntil(factory.made[0].busy.is_set)  # photo 1 is being computed; 2-8 wait
    worker.view(5, str(files[4]))
    worker.recompute(3, str(files[2]), "layer3")
    worker.load("second.pth", "cpu")
    gate.set()
    qtbot.waitUntil(lambda: sum(e[0] == "classified" for e in rec.events) == 8, timeout=60_000)
    got = [e[:2] for e in rec.events[1:]]
    assert got[:4] == [("classified", 1), ("view", 5), ("recomputed", 3), ("ready", "fake weights second.pth")]
    assert got[4:] == [("classified", i) for i in range(2, 9)]
    # the switch took effect for the rest of the queue: photos 2-8 went to the second model
    assert [name for name, _ in factory.made[1].calls] == [f.name for f in files[1:]]
    assert factory.made[0].calls == [(files[0].name, "layer4"), (files[2].name, "layer3")]


def test_every_job_kind_reports_its_failure(qtbot, gated, tmp_path):
    worker, factory, gate, rec = gated
    gate.set()
    missing = str(tmp_path / "gone.jpg")
    worker.classify(1, missing)
    worker.view(2, missing)
    worker.recompute(3, missing, "layer3")
    qtbot.waitUntil(lambda: len(rec.events) == 4, timeout=30_000)
    kinds = {e[0]: e for e in rec.events[1:]}
    assert kinds["classified"][1:] == (1, False)
    assert "does not exist" in kinds["view failed"][2]
    assert "does not exist" in kinds["recompute failed"][2]


def test_a_fault_inside_a_job_is_reported_not_lost(qtbot, gated, photos, monkeypatch):
    worker, factory, gate, rec = gated
    gate.set()

    def broken(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(factory.made[0], "classify", broken)
    with qtbot.waitSignal(rec.changed, timeout=30_000):
        worker.recompute(4, str(photos["coffee"]), "layer3")
    assert rec.events[-1][:2] == ("recompute failed", 4) and "MemoryError" in rec.events[-1][2]
    with qtbot.waitSignal(rec.changed, timeout=30_000):
        worker.classify(5, str(photos["coffee"]))
    assert rec.events[-1] == ("classified", 5, False)


def test_cancel_batch_drops_waiting_photos_and_the_thread_stops(qtbot, gated, photos, tmp_path):
    worker, factory, gate, rec = gated
    for i, f in enumerate(copies([photos["chelsea"]], 6, tmp_path), start=1):
        worker.classify(i, str(f))
    qtbot.waitUntil(factory.made[0].busy.is_set)
    assert worker.cancel_batch() == [2, 3, 4, 5, 6]
    gate.set()
    qtbot.waitUntil(lambda: len(rec.events) == 2, timeout=30_000)
    assert rec.events[1] == ("classified", 1, True)
    assert worker.stop() and not worker.is_running()


def test_backend_and_precision_reach_the_classifier_and_progress_reaches_the_status(qtbot, tmp_path):
    from resnext_gui.worker import Worker
    from tests.ui.fakes import FakeFactory

    factory = FakeFactory()
    worker = Worker(str(tmp_path / "w.pth"), "cpu", classifier_factory=factory, backend="torch", precision="bf16")
    loading = []
    worker.loading.connect(loading.append)
    try:
        with qtbot.waitSignal(worker.modelReady, timeout=20000) as ready:
            worker.start()
        assert factory.options[0]["backend"] == "torch" and factory.options[0]["precision"] == "bf16"
        assert ready.args[0].backend == "torch" and "PyTorch" in ready.args[0].device
        factory.options[0]["progress"]("Converting the model for OpenVINO…")
        qtbot.waitUntil(lambda: loading[-1:] == ["Converting the model for OpenVINO…"], timeout=5000)
        with qtbot.waitSignal(worker.modelReady, timeout=20000):
            worker.load(worker.weights, "cpu", backend="openvino")
        assert factory.options[1]["backend"] == "openvino" and factory.options[1]["precision"] == "bf16"
    finally:
        assert worker.stop()
