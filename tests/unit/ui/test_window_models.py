"""The window when its model changes (Teach → Use, another weights file) and the folders its file dialogs open
in: with the fake worker, whose answers the test gives."""

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.gallery import Status
from resnext_gui.ui.main_window import MainWindow
from resnext_gui.worker.jobs.model import LoadJob
from resnext_gui.worker.jobs.photo import ClassifyJob, RecomputeJob
from resnext_gui.worker.jobs.teach import SaveModelJob
from resnext_gui.worker.results import ModelInfo, PhotoResult, TrainOutcome
from tests.support.ui_fakes import FakeWorker


def info(key, name, **kw):
    return ModelInfo(device="CPU · 2 threads · OpenVINO", device_type="cpu", weights=f"custom checkpoint: /w/{name}",
                     weights_short=name, num_classes=1000, cuda_available=False, load_ms=1.0, backend="openvino",
                     model_key=key, **kw)


def answer(job, label, model):
    return PhotoResult(job.item_id, True, str(job.source), top=[TopClass(1, 0, label, 0.77)], model=model,
                       record={"path": str(job.source), "ok": True}, display=QImage(8, 8, QImage.Format.Format_RGB888))


@pytest.fixture
def win(qtbot, settings):
    window = MainWindow(device="cpu", settings=settings, worker=FakeWorker())
    qtbot.addWidget(window)
    window.model.start()
    window.worker.answer(window.worker.of(LoadJob)[-1], info("imagenet", "resnext50_32x4d-1a0047aa.pth"))
    yield window
    window.close()


def classified(win, tmp_path, n=3, label="projectile", model="imagenet"):
    paths = []
    for i in range(n):
        path = tmp_path / f"p{i}.png"
        QImage(8, 8, QImage.Format.Format_RGB888).save(str(path))
        paths.append((str(path), path.name))
    photos = win.controller.enqueue(paths)
    for job in win.worker.of(ClassifyJob)[-n:]:
        win.worker.answer(job, answer(job, label, model))
    return photos


# ---- answers another model gave ----
def test_answers_of_the_previous_model_are_marked_and_the_photo_shown_is_classified_again(qtbot, win, tmp_path):
    from resnext_gui.ui.gallery import OtherModelRole

    photos = classified(win, tmp_path)
    qtbot.waitUntil(lambda: all(p.status is Status.DONE for p in photos))
    win.select(photos[0])
    message = win.controls.top5.message
    assert message.text() == ""
    before = len(win.worker.of(RecomputeJob))
    win.model.load_weights("/w/textures.safetensors")  # Teach → Use, or File → Open Weights
    win.worker.answer(win.worker.of(LoadJob)[-1], info("textures", "textures.safetensors"))
    gallery = win.proxy
    marks = [gallery.index(r, 0).data(OtherModelRole) for r in range(gallery.rowCount())]
    assert marks == ["resnext50_32x4d-1a0047aa.pth"] * 3  # every answer says it is another model's
    tip = gallery.index(1, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "The answer of another model (resnext50_32x4d-1a0047aa.pth)" in tip and "textures.safetensors" in tip
    again = win.worker.of(RecomputeJob)[before:]
    assert [j.item_id for j in again] == [photos[0].item_id]  # the photo shown, at once; the others wait
    assert message.text() == ("These are the answers of another model, resnext50_32x4d-1a0047aa.pth: classifying the "
                              "photo with textures.safetensors…")
    win.worker.answer(again[0], answer(again[0], "woven", "textures"))
    assert photos[0].result.top[0].label == "woven"
    assert gallery.index(0, 0).data(OtherModelRole) is None and message.text() == ""
    # Retry classifies the rest with the model in use (the library answers those it knows without a pass)
    assert win.commands["retry"].isEnabled()
    win.controller.retry()
    assert [j.item_id for j in win.worker.of(ClassifyJob)[-2:]] == [photos[1].item_id, photos[2].item_id]
    assert win.statusBar().currentMessage() == ("Classifying 2 photos again with textures.safetensors "
                                                "(2 answered by another model).")


def test_another_runtime_for_the_same_model_marks_nothing(win, tmp_path, qtbot):
    from resnext_gui.ui.gallery import OtherModelRole

    photos = classified(win, tmp_path, n=2)
    qtbot.waitUntil(lambda: all(p.status is Status.DONE for p in photos))
    win.model.set_backend("torch")
    win.worker.answer(win.worker.of(LoadJob)[-1], info("imagenet", "resnext50_32x4d-1a0047aa.pth", backend_choice="torch"))
    assert all(win.proxy.index(r, 0).data(OtherModelRole) is None for r in range(2))
    assert win.controller.retry_scope() == []


# ---- Teach: Save before Use, Use before Save, a name without its extension ----
def teach_outcome(win, tmp_path):
    temporary = tmp_path / "cache" / "taught-20261205-175803-049000.safetensors"
    temporary.parent.mkdir(parents=True)
    temporary.write_bytes(b"model")
    dialog = win.model.teach()
    dialog._on_finished(TrainOutcome(str(temporary), {"counts": {"a": 3, "b": 3}, "features": {"computed": 6, "cached": 0},
                                                      "unreadable": [], "warnings": [], "validation": {}}, ["a", "b"], []))
    return dialog, str(temporary)


def test_saved_then_used_the_window_names_the_file_the_user_chose(win, tmp_path):
    dialog, temporary = teach_outcome(win, tmp_path)
    target = str(tmp_path / "textures.safetensors")
    dialog.save_to(target)
    win.worker.answer(win.worker.of(SaveModelJob)[-1], target)
    Path(target).write_bytes(b"model")  # what the job wrote
    assert dialog.saved_label.text().startswith(f"Saved {target}")
    dialog.use_model()
    used = win.worker.of(LoadJob)[-1]
    assert used.weights == target  # the file chosen, not the cache's copy
    assert "Save it to keep it" not in dialog.saved_label.text() and target in dialog.saved_label.text()
    win.worker.answer(used, info("taught", "textures.safetensors"))
    assert win.model.weights_label.text() == "Weights: textures.safetensors"
    from resnext_gui.ui.recent import RecentWeights

    assert RecentWeights(win.settings).paths()[0] == target and temporary not in RecentWeights(win.settings).paths()
    dialog.close()


def test_used_then_saved_the_window_and_the_next_start_take_the_saved_file(win, tmp_path):
    from resnext_gui.ui.recent import RecentWeights

    dialog, temporary = teach_outcome(win, tmp_path)
    dialog.use_model()
    assert dialog.saved_label.text() == "The window now uses the new model. Save it to keep it for later."
    win.worker.answer(win.worker.of(LoadJob)[-1], info("taught", Path(temporary).name))
    target = str(tmp_path / "textures.safetensors")
    dialog.save_to(str(tmp_path / "textures"))  # no extension: added, as Export adds its own
    job = win.worker.of(SaveModelJob)[-1]
    assert job.target == target
    win.worker.answer(job, target)
    assert win.model.weights_label.text() == "Weights: textures.safetensors"
    assert "Save it to keep it" not in dialog.saved_label.text() and dialog.saved_label.text().startswith(f"Saved {target}")
    assert RecentWeights(win.settings).paths()[0] == target  # the next start opens the saved file, not the cache's
    dialog.close()


# ---- the file dialogs open in the folder last used for their kind of file ----
class Dialogs:
    """QFileDialog's functions, answering with the paths a test gives and noting the folder each opened in."""

    def __init__(self, monkeypatch):
        self.opened: list[tuple[str, str]] = []  # (title, the folder or file it started at)
        self.answers: list[str] = []
        for name in ("getSaveFileName", "getOpenFileName"):
            monkeypatch.setattr(QFileDialog, name, self._file)
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", self._folder)

    def _file(self, parent, title, start="", *rest, **kw):
        self.opened.append((title, start))
        return self.answers.pop(0), ""

    def _folder(self, parent, title, start="", *rest, **kw):
        self.opened.append((title, start))
        return self.answers.pop(0)


def test_each_file_dialog_opens_where_its_kind_of_file_went_last(win, tmp_path, monkeypatch, qtbot):
    dialogs = Dialogs(monkeypatch)
    folders = {kind: tmp_path / kind for kind in ("overlays", "exports", "classes", "models")}
    for folder in folders.values():
        folder.mkdir()
    photos = classified(win, tmp_path, n=1)
    qtbot.waitUntil(lambda: photos[0].status is Status.DONE)
    win.select(photos[0])
    monkeypatch.setattr(win.presenter, "save_overlay_to", lambda path: True)  # the dialog is what is tested
    monkeypatch.setattr(win.controller, "export_results", lambda *args: True)
    dialogs.answers = [str(folders["overlays"] / "mine.png"), str(folders["exports"] / "all.csv")]
    win.presenter.save_overlay()
    win.presenter.export_dialog()
    dialog, _ = teach_outcome(win, tmp_path)
    dialogs.answers = [str(folders["classes"]), str(folders["models"] / "textures.safetensors")]
    monkeypatch.setattr(dialog, "set_data", lambda data: None)
    dialog.choose_folder()
    dialog.save_dialog()
    first = list(dialogs.opened)
    dialogs.opened.clear()
    dialogs.answers = [str(folders["overlays"] / "b.png"), str(folders["exports"] / "b.csv"), str(folders["classes"]),
                       str(folders["models"] / "b.safetensors"), str(folders["models"] / "b.safetensors")]
    win.presenter.save_overlay()
    win.presenter.export_dialog()
    dialog.choose_folder()
    dialog.save_dialog()
    monkeypatch.setattr(win.model, "load_weights", lambda path: None)
    win.model.choose_weights()  # Open Weights: model files too
    starts = [Path(start) for _title, start in dialogs.opened]
    assert starts[0].parent == folders["overlays"] and starts[0].name.endswith(".png")
    assert starts[1] == folders["exports"] / "results.csv"
    assert starts[2] == folders["classes"] and starts[3] == folders["models"] / "my-classes.safetensors"
    assert starts[4] == folders["models"]
    assert all(str(tmp_path / kind) not in start for (_t, start), kind in zip(first, folders))  # first: elsewhere
    dialog.close()
