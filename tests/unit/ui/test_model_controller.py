"""The model controller (ui/model_controller.py) with a fake worker: which weights, the banner, the download
dialog, Recent Weights; no main window."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenuBar, QWidget

from resnext_gui.ui.actions import Actions
from resnext_gui.ui.messages import Messages
from resnext_gui.ui.model_controller import ModelController, startup_weights
from resnext_gui.ui.recent import RecentWeights
from resnext_gui.worker.jobs.model import DownloadJob, LoadJob
from resnext_gui.worker.results import ModelInfo, ModelMissing
from tests.support.ui_fakes import FakeWorker


def info(**kw):
    base = dict(device="CPU · 2 threads · OpenVINO", device_type="cpu", weights="/w/mine.pth (sha256 ab)",
                weights_short="mine.pth", num_classes=1000, cuda_available=False, load_ms=1.0)
    return ModelInfo(**{**base, **kw})


@pytest.fixture
def rig(qtbot, tmp_path):
    parent = QWidget()
    qtbot.addWidget(parent)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    worker = FakeWorker()
    messages = Messages(parent)
    messages.listen(worker)
    model = ModelController(worker, settings, messages, "cpu", parent)
    actions = Actions(parent, {"can_undo": lambda: False, "can_download": model.can_download,
                               "cuda_available": model.cuda_available, "bf16_offered": model.bf16_offered,
                               "has_photo": lambda: False, "can_retry": lambda: False})
    bar = QMenuBar(parent)
    actions.build(bar)
    model.attach(actions)
    states = []
    model.stateChanged.connect(states.append)
    return SimpleNamespace(model=model, worker=worker, messages=messages, actions=actions, states=states,
                           settings=settings, parent=parent)


def started(rig, result):
    """The window's first load, answered with ``result``."""
    rig.model.start()
    first = rig.worker.of(LoadJob)[-1]
    assert not first.explicit  # no weights is no failure
    rig.worker.answer(first, result)


def test_the_startup_weights_are_the_ones_named_else_the_environment_s_else_the_last_chosen(tmp_path, monkeypatch):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    recent = RecentWeights(settings)
    last = tmp_path / "last.pth"
    last.write_bytes(b"x")
    recent.remember(str(last))
    monkeypatch.delenv("RESNEXT_GUI_WEIGHTS", raising=False)
    assert startup_weights("named.pth", recent) == "named.pth"
    assert startup_weights(None, recent) == str(last)
    monkeypatch.setenv("RESNEXT_GUI_WEIGHTS", str(tmp_path / "env.pth"))
    assert startup_weights(None, recent) is None  # the worker's lookup order finds the environment's file


def test_a_loaded_model_is_named_in_the_status_bar_and_a_chosen_file_is_remembered(rig, tmp_path):
    chosen = tmp_path / "mine.pth"
    chosen.write_bytes(b"x")
    rig.model.load_weights(str(chosen))
    (job,) = rig.worker.of(LoadJob)
    assert job.weights == str(chosen) and job.explicit
    rig.worker.answer(job, info(cuda_available=True, bf16_native=True))
    assert rig.states == ["ready"] and rig.model.device_label.text() == "CPU · 2 threads · OpenVINO"
    assert rig.model.weights_label.text() == "Weights: mine.pth"
    assert RecentWeights(rig.settings).paths() == [str(chosen)] and rig.actions.menus["recent"].isEnabled()
    assert rig.actions["device_cuda"].isEnabled() and rig.actions["bf16"].isEnabled()
    rig.model.fill_recent_menu()
    assert [a.text() for a in rig.actions.menus["recent"].actions()] == ["mine.pth"]


def test_no_weights_shows_the_banner_and_a_refused_file_keeps_the_model_in_use(rig):
    started(rig, ModelMissing("No weights anywhere"))
    assert rig.states == ["missing"] and rig.model.state == "missing"
    assert not rig.model.banner.isHidden() and "never guesses" in rig.model.banner.text.text()
    assert rig.model.device_label.text() == "No model weights"
    rig.model.download_weights()
    rig.worker.answer(rig.worker.of(DownloadJob)[-1], "/hub/resnext50_32x4d-1a0047aa.pth")
    rig.worker.answer(rig.worker.of(LoadJob)[-1], info())  # the download is loaded where it was saved
    assert rig.worker.of(LoadJob)[-1].weights is None and rig.model.banner.isHidden()
    rig.model.load_weights("/w/bad.pth")
    rig.worker.fail(rig.worker.of(LoadJob)[-1], "/w/bad.pth is empty")
    assert rig.states[-1] == "failed" and rig.model.device_label.text() == "CPU · 2 threads · OpenVINO"
    box = rig.messages.last_message
    assert box.text() == "/w/bad.pth is empty. The previous model stays in use."
    box.close()
    assert RecentWeights(rig.settings).paths() == []  # a refused file is not remembered


def test_the_download_dialog_shows_progress_and_a_cancel_is_no_failure(qtbot, rig):
    rig.model.download_weights()
    dlg = rig.model.download_dialog
    (job,) = rig.worker.of(DownloadJob)
    assert dlg is not None and not rig.actions["download"].isEnabled()
    assert not rig.model.banner.download_button.isEnabled()
    rig.worker.report(job, 50 * 2**20, 100 * 2**20)
    assert dlg.value() == 500 and dlg.labelText().endswith("50.0 of 100.0 MB")
    rig.model._cancel_download()
    assert job.cancel.is_set() and dlg.labelText() == "Cancelling…"
    rig.worker.fail(job, "Download cancelled; nothing was saved.")
    assert rig.model.download_dialog is None and rig.messages.last_message is None
    assert rig.actions["download"].isEnabled() and rig.model.banner.download_button.isEnabled()
    rig.model.download_weights()
    rig.worker.fail(rig.worker.of(DownloadJob)[-1], "the mirror said 404")
    assert rig.messages.last_message.windowTitle() == "Download failed"
    rig.messages.last_message.close()


def test_device_and_runtime_choices_are_remembered_and_reload_only_a_loaded_model(rig):
    rig.model.set_device("auto")
    assert rig.worker.of(LoadJob) == [] and rig.settings.value("device") == "auto"  # nothing loaded yet
    started(rig, info())
    rig.model.set_backend("torch")
    rig.model.set_bf16(True)
    loads = rig.worker.of(LoadJob)[1:]
    assert [(j.backend, j.precision) for j in loads] == [("torch", "fp32"), ("torch", "bf16")]  # each load: both choices
    assert rig.settings.value("backend") == "torch" and rig.settings.value("precision") == "bf16"
    assert [a.isChecked() for a in rig.actions.groups["device"].actions()] == [True, False, False]


def test_a_recent_file_that_is_gone_is_forgotten_with_a_message(rig, tmp_path):
    gone = tmp_path / "gone.pth"
    RecentWeights(rig.settings).remember(str(gone))
    rig.model.open_recent(str(Path(gone)))
    assert RecentWeights(rig.settings).paths() == [] and not rig.actions.menus["recent"].isEnabled()
    assert rig.messages.last_message.windowTitle() == "Weights file not found"
    rig.messages.last_message.close()


def test_a_taught_model_in_use_is_named_by_the_file_it_was_saved_to(rig, tmp_path):
    from resnext_gui.worker.jobs.teach import SaveModelJob
    from resnext_gui.worker.results import TrainOutcome

    temporary = str(tmp_path / "cache" / "taught-1f2e.safetensors")
    started(rig, info())
    dialog = rig.model.teach()
    dialog.outcome = TrainOutcome(temporary, {}, ["a", "b"], [])
    dialog.use_model()
    (_, use) = rig.worker.of(LoadJob)
    rig.worker.answer(use, info(weights=f"custom checkpoint: {temporary} (from the file chosen)",
                                weights_short="taught-1f2e.safetensors"))
    assert rig.model.weights_label.text() == "Weights: taught-1f2e.safetensors"
    saved = str(tmp_path / "my-classes.safetensors")
    dialog.save_to(saved)
    (job,) = rig.worker.of(SaveModelJob)
    rig.worker.answer(job, saved)
    assert rig.model.weights_label.text() == "Weights: my-classes.safetensors"
    assert rig.model.weights_label.toolTip().count(saved) == 1 and temporary not in rig.model.weights_label.toolTip()
    assert rig.model.weights == saved  # a change of device reloads the saved file, not the cache's copy
    rig.model.set_device("cpu")
    assert rig.worker.of(LoadJob)[-1].weights == saved
    dialog.close()


def test_saving_a_taught_model_not_in_use_leaves_the_status_bar_alone(rig, tmp_path):
    from resnext_gui.worker.jobs.teach import SaveModelJob
    from resnext_gui.worker.results import TrainOutcome

    rig.model.load_weights("/w/mine.pth")
    rig.worker.answer(rig.worker.of(LoadJob)[-1], info())
    dialog = rig.model.teach()
    dialog.outcome = TrainOutcome(str(tmp_path / "taught.safetensors"), {}, ["a", "b"], [])
    dialog.save_to(str(tmp_path / "kept.safetensors"))
    (job,) = rig.worker.of(SaveModelJob)
    rig.worker.answer(job, str(tmp_path / "kept.safetensors"))
    assert rig.model.weights_label.text() == "Weights: mine.pth" and rig.model.weights == "/w/mine.pth"
    dialog.close()


# ---- the CPU runtime: only what the build can run, reloaded in both directions, the tick on the one in use ----
def test_a_change_of_runtime_reloads_in_both_directions_also_when_no_model_could_load(rig):
    started(rig, ModelMissing("the CPU runtime could not load the model"))  # e.g. a start with a runtime that failed
    rig.model.set_backend("torch")
    rig.worker.answer(rig.worker.of(LoadJob)[-1], info(backend="torch", backend_choice="torch",
                                                       device="CPU · 2 threads · PyTorch"))
    assert rig.actions["backend_torch"].isChecked() and rig.settings.value("backend") == "torch"
    rig.model.set_backend("auto")  # back to Automatic: loaded again, not kept as it was
    back = rig.worker.of(LoadJob)[-1]
    assert [j.backend for j in rig.worker.of(LoadJob)[1:]] == ["torch", "auto"] and back.explicit
    rig.worker.answer(back, info(backend="openvino", backend_choice="auto"))
    assert rig.actions["backend_auto"].isChecked() and rig.model.device_label.text().endswith("OpenVINO")
    rig.model.load_weights("/w/other.pth")  # later loads keep the runtime chosen
    assert rig.worker.of(LoadJob)[-1].backend == "auto"


def test_a_refused_runtime_leaves_the_tick_and_the_setting_on_the_runtime_in_use(rig):
    started(rig, info(backend="openvino", backend_choice="auto"))
    rig.model.set_backend("openvino")  # what Device → CPU Runtime: OpenVINO calls
    job = rig.worker.of(LoadJob)[-1]
    assert job.backend == "openvino" and rig.actions["backend_openvino"].isChecked()
    rig.worker.fail(job, "OpenVINO could not compile the network for this CPU (out of memory), and this build of "
                         "the app has no PyTorch to run the network instead.")
    assert rig.actions["backend_auto"].isChecked() and rig.settings.value("backend") == "auto"
    box = rig.messages.last_message
    assert box.windowTitle() == "Cannot use this CPU runtime"
    assert box.text().endswith("to run the network instead. The previous model stays in use.")
    box.close()
    rig.model.set_device("cpu")
    assert rig.worker.of(LoadJob)[-1].backend == "auto"  # the refused choice is not carried on


def test_a_runtime_named_that_falls_back_shows_the_one_that_runs(rig):
    started(rig, info())
    rig.model.set_backend("openvino")
    rig.worker.answer(rig.worker.of(LoadJob)[-1], info(backend="torch", backend_choice="openvino",
                                                       note="using PyTorch: OpenVINO failed"))
    assert rig.actions["backend_torch"].isChecked() and not rig.actions["backend_openvino"].isChecked()


@pytest.fixture
def no_torch(monkeypatch):
    """The light app's condition, as the core sees it: torch cannot be imported."""
    from resnext_gui.core import classifier, devices

    monkeypatch.setattr(devices, "torch_installed", lambda: False)
    monkeypatch.setattr(classifier, "torch_installed", lambda: False)


def test_a_build_without_pytorch_does_not_offer_it(no_torch, rig):
    torch_action = rig.actions["backend_torch"]
    assert not torch_action.isEnabled() and "no PyTorch" in torch_action.toolTip()
    rig.actions.refresh()  # refreshing the menus' predicates leaves it so
    assert not torch_action.isEnabled() and rig.actions["backend_openvino"].isEnabled()
    started(rig, info(backend="openvino"))
    rig.model.set_backend("torch")  # a stray call (the action is disabled): nothing is loaded, nothing saved
    assert len(rig.worker.of(LoadJob)) == 1 and rig.actions["backend_auto"].isChecked()
    assert rig.settings.value("backend", "auto") == "auto"  # none saved is Automatic


def test_a_saved_pytorch_choice_in_a_build_without_it_loads_with_openvino_and_says_so_once(no_torch, qtbot, checkpoint,
                                                                                         settings):
    """The settings say PyTorch (chosen in another installation, or before); this build has none, and the window
    starts with --weights FILE: the model loads with OpenVINO, and one note says why."""
    from resnext_gui.ui.main_window import MainWindow

    settings.setValue("backend", "torch")
    settings.sync()
    win = MainWindow(weights=str(checkpoint), device="cpu", settings=settings)  # its own worker, as the app
    qtbot.addWidget(win)
    notes = []
    win.messages.status.connect(lambda text, _ms: notes.append(text))
    box = win.messages.last_message
    assert box is not None and box.windowTitle() == "Settings reset"
    assert box.text() == ("The CPU runtime in the settings, PyTorch, cannot run here: this build of the app has no "
                          "PyTorch (its CPU runtime is OpenVINO). Using Automatic.")
    box.close()
    win.show()
    with qtbot.waitSignal(win.modelStateChanged, timeout=90_000) as state:
        win.start()
    assert state.args == ["ready"]
    assert win.model.info.backend == "openvino" and win.model.device_label.text().endswith("OpenVINO")
    assert win.commands["backend_auto"].isChecked() and not win.commands["backend_torch"].isEnabled()
    assert win.messages.last_message is None or win.messages.last_message is box  # no second dialog
    assert not any("PyTorch" in text for text in notes)  # nor a note in the status bar
    win.close()
    assert not win.worker.is_running()


def test_a_failed_download_offers_to_open_a_weights_file(rig, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    chosen = tmp_path / "mine.pth"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(chosen), ""))
    started(rig, ModelMissing("No weights anywhere"))
    rig.model.download_weights()
    rig.worker.fail(rig.worker.of(DownloadJob)[-1], "This computer has no connection to the internet, so the "
                    "ImageNet weights could not be downloaded; nothing was saved.")
    box = rig.messages.last_message
    assert box.windowTitle() == "Download failed" and "no connection to the internet" in box.text()
    (opener,) = [b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.ActionRole]
    assert opener.text() == "Open Weights File…"
    opener.click()
    assert rig.worker.of(LoadJob)[-1].weights == str(chosen)
    box.close()
