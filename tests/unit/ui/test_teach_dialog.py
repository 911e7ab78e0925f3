"""File → Teach New Classes…: the dialog runs training on the worker thread and shows, uses and saves the result."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from PySide6.QtCore import QMimeData, QUrl

from resnext_gui.worker.jobs.teach import SaveModelJob, TrainJob
from resnext_gui.worker.queue import JobFailed
from tests.support.qt_fixtures import drop, open_window
from tests.support.ui_fakes import FakeFactory


def class_folders(root: Path, photos: dict) -> Path:
    rng = np.random.default_rng(0)
    for name in ("chelsea", "coffee", "astronaut"):
        base = Image.open(photos[name]).convert("RGB").resize((64, 64))
        (root / name).mkdir(parents=True)
        for i in range(5):
            ImageEnhance.Brightness(base).enhance(rng.uniform(0.6, 1.4)).save(root / name / f"{i}.png")
    return root


def test_teach_use_and_save(qtbot, settings, checkpoint, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    factory = FakeFactory()
    win = open_window(qtbot, settings, checkpoint, factory=factory)
    dlg = win.model.teach()
    assert win.model.teach() is dlg  # one dialog per window
    data = class_folders(tmp_path / "data", photos)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(data / n)) for n in ("coffee", "chelsea")])
    drop(dlg, mime=mime)
    assert dlg.data == [str(data / "coffee"), str(data / "chelsea")] and dlg.train_button.isEnabled()
    drop(dlg, [data])  # the folder that holds them: its subfolders are the classes
    assert dlg.data == str(data) and dlg.class_list.count() == 3
    progress = []
    win.worker.progress.connect(lambda job, d, t: progress.append((d, t)) if isinstance(job, TrainJob) else None)
    with qtbot.waitSignal(win.worker.finished, timeout=60_000, check_params_cb=lambda job, _: isinstance(job, TrainJob)) as got:
        dlg.start_training()
        assert not dlg.train_button.isEnabled() and dlg.cancel_button.text() == "Stop"
    outcome = got.args[1]
    assert progress and progress[-1] == (15, 15)
    assert outcome.labels == ["astronaut", "chelsea", "coffee"]
    assert dlg.pages.currentIndex() == 1
    assert dlg.accuracy.text().startswith("Accuracy on 3 photos kept aside")
    model = dlg.confusion.model()
    assert model.rowCount() == model.columnCount() == 3
    total = sum(int(model.index(r, c).data()) for r in range(3) for c in range(3))
    assert total == 3
    assert dlg.mistakes.count() == max(1, len(outcome.mistakes))
    assert Path(outcome.model_path).is_file() and str(tmp_path / "cache") in outcome.model_path
    # Use: the window's worker loads the new file
    with qtbot.waitSignal(win.modelStateChanged, timeout=30_000):
        dlg.use_model()
    assert str(factory.made[-1].source.path) == outcome.model_path
    # Save…: copied where the user chose, atomically
    target = tmp_path / "mine.safetensors"
    with qtbot.waitSignal(win.worker.finished, timeout=30_000, check_params_cb=lambda job, _: isinstance(job, SaveModelJob)) as saved:
        dlg.save_to(str(target))
    assert saved.args[1] == str(target)
    assert target.read_bytes() == Path(outcome.model_path).read_bytes()
    assert dlg.saved_label.text().startswith("Saved")
    # models are safetensors files: another suffix is refused with the name to use, and nothing is written
    with qtbot.waitSignal(win.worker.failed, timeout=30_000, check_params_cb=lambda job, _: isinstance(job, SaveModelJob)) as refused:
        dlg.save_to(str(tmp_path / "mine.pth"))
    assert "safetensors format" in refused.args[1] and "mine.safetensors" in refused.args[1]
    assert "safetensors format" in dlg.saved_label.text() and not (tmp_path / "mine.pth").exists()
    win.close()


def test_refusal_is_shown_in_the_dialog(qtbot, settings, checkpoint, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    win = open_window(qtbot, settings, checkpoint, factory=FakeFactory())
    dlg = win.model.teach()
    data = class_folders(tmp_path / "data", photos)
    for extra in list((data / "coffee").iterdir())[1:]:
        extra.unlink()
    dlg.set_data(str(data))
    with qtbot.waitSignal(win.worker.failed, timeout=60_000, check_params_cb=lambda job, _: isinstance(job, TrainJob)):
        dlg.start_training()
    assert "'coffee' (1)" in dlg.status.text() and dlg.pages.currentIndex() == 0
    assert dlg.train_button.isEnabled() and dlg.cancel_button.text() == "Close"
    win.close()


def test_the_classes_show_their_photo_counts_before_teaching(qtbot, tmp_path):
    """Counted on the worker's thread by core.train.scan (here: the fake worker's job, run as the worker runs it)."""
    from resnext_gui.ui.messages import Messages
    from resnext_gui.ui.teach_dialog import TeachDialog
    from resnext_gui.worker.jobs.teach import CountJob
    from tests.support.ui_fakes import FakeWorker

    worker, messages = FakeWorker(), Messages()
    messages.listen(worker)
    dlg = TeachDialog(worker, messages)
    qtbot.addWidget(dlg)
    sizes = {"ripe": 7, "unripe": 3}
    for name, n in sizes.items():
        (tmp_path / "data" / name / "deeper").mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (4, 4)).save(tmp_path / "data" / name / ("deeper" if i % 2 else "") / f"{i}.png")
        (tmp_path / "data" / name / "notes.txt").write_text("not a photo")
    dlg.set_data(str(tmp_path / "data"))
    (job,) = worker.of(CountJob)
    assert job.data == str(tmp_path / "data")
    worker.answer(job, job.run(None))
    shown = [dlg.class_list.item(i).text() for i in range(dlg.class_list.count())]
    assert shown == ["ripe — 7 photos", "unripe — 3 photos"]
    assert dlg.status.text().startswith("2 classes, 10 photos.") and dlg.train_button.isEnabled()
    # a class too small to teach: the reason, and Teach is off
    (tmp_path / "few" / "a").mkdir(parents=True)
    (tmp_path / "few" / "b").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "few" / "a" / "only.png")
    for i in range(2):
        Image.new("RGB", (4, 4)).save(tmp_path / "few" / "b" / f"{i}.png")
    dlg.set_data(str(tmp_path / "few"))
    job = worker.of(CountJob)[-1]
    with pytest.raises(JobFailed) as refused:
        job.run(None)
    worker.fail(job, str(refused.value))
    assert "'a' (1)" in dlg.status.text() and not dlg.train_button.isEnabled()
    # an answer for folders chosen before is not shown over the current ones
    worker.answer(worker.of(CountJob)[0], job.__class__(str(tmp_path / "data")).run(None))
    assert "'a' (1)" in dlg.status.text()


def many_classes_outcome(k: int, per_class: int = 3):
    from resnext_gui.core import train as T
    from resnext_gui.worker.results import Misclassified, TrainOutcome

    labels = [f"class {c:04}" for c in range(k)]
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(k), per_class)
    pred = np.where(rng.random(len(truth)) < 0.3, rng.integers(0, k, len(truth)), truth)
    val = T.metrics(truth, pred, labels)
    summary = {"classes": labels, "counts": dict.fromkeys(labels, per_class * 4), "validation": val,
               "train_accuracy": 1.0, "misclassified": [], "unreadable": [],
               "warnings": [f"classes with fewer than 10 photos give unreliable models: {', '.join(labels)}"] * 30,
               "features": {"computed": 0, "cached": k * per_class * 4, "ms": 0.0}, "fit_ms": 0.0}
    mistakes = [Misclassified(f"/p/{i}.png", labels[t], labels[p], 0.4)
                for i, (t, p) in enumerate(zip(truth.tolist(), pred.tolist(), strict=True)) if t != p]
    return TrainOutcome("/nowhere/model.safetensors", summary, labels, mistakes), val


def test_a_thousand_classes_show_as_a_table_drawn_row_by_row(qtbot, monkeypatch):
    """The result page asks its model only for what it draws (a QTableWidget made a million cells: 7 s, 747 MB)."""
    from resnext_gui.ui import teach_dialog
    from resnext_gui.ui.messages import Messages
    from tests.support.ui_fakes import FakeWorker

    calls = [0]
    real = teach_dialog.ClassTableModel.data

    def counted(self, index, role=0):
        calls[0] += 1
        return real(self, index, role)

    monkeypatch.setattr(teach_dialog.ClassTableModel, "data", counted)
    dlg = teach_dialog.TeachDialog(FakeWorker(), Messages())
    qtbot.addWidget(dlg)
    outcome, val = many_classes_outcome(1000)
    dlg._on_finished(outcome)
    dlg.show()
    dlg.grab()
    model = dlg.confusion.model()
    assert isinstance(model, teach_dialog.ClassTableModel) and (model.rowCount(), model.columnCount()) == (1000, 6)
    assert calls[0] < 100 * 6 * 10  # fewer than 100 rows' worth of cells, every role asked
    worst = val["worst"][0]
    assert model.index(0, 0).data() == worst["class"] and model.index(0, 3).data() == f"{worst['recall']:.0%}"
    assert dlg.table_title.text() == "The 1000 classes, the least often recognised first"
    text = dlg.details.text()
    assert "and 980 more classes" in text and "… and 22 more warnings" in text
    assert len(text) < (teach_dialog.WARNINGS_SHOWN + 3) * teach_dialog.LINE_MAX
    assert dlg.mistakes.count() == len(outcome.mistakes)
    # a few classes: the whole confusion matrix, its cells from the same answer
    small, small_val = many_classes_outcome(4, per_class=5)
    dlg._on_finished(small)
    matrix = dlg.confusion.model()
    assert isinstance(matrix, teach_dialog.ConfusionModel) and matrix.columnCount() == 4
    cells = {(r, c): int(matrix.index(r, c).data()) for r in range(4) for c in range(4)}
    assert sum(cells.values()) == 20 and [sum(cells[r, c] for c in range(4)) for r in range(4)] == [5] * 4
    assert all(cells[r, r] == small_val["per_class"][f"class {r:04}"]["correct"] for r in range(4))
