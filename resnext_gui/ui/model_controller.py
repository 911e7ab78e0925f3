"""The model the window uses: weights (Open, Recent, the no-weights banner, the download dialog), device and
CPU runtime, the status-bar labels naming them, the About box and Teach New Classes."""

from __future__ import annotations

import dataclasses
import functools
import html
import os
import platform
from pathlib import Path

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QMenu, QMessageBox, QProgressDialog, QPushButton, QWidget

from .. import __version__
from ..core.devices import runtime_problem
from ..core.kinds import Backend, Precision
from ..core.weights import ENV_WEIGHTS
from ..worker.jobs.model import DownloadJob, LoadJob
from ..worker.results import ModelInfo, ModelMissing
from ..worker.runner import WorkerLike
from .actions import Actions
from .controller import ModelState
from .folders import LastFolders
from .messages import Messages
from .recent import RecentWeights
from .text import plain_tooltip, sentence

BANNER = ("<b>No model weights found.</b> This app never guesses with an untrained network. "
          "Download the official ImageNet weights (96 MB, checked and stored where torchvision keeps them), "
          "or open a ResNeXt-50 checkpoint you have. Photos you drop now will wait.")


def plain_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # names, labels and paths are never read as HTML
    return label


def startup_weights(weights: str | None, recent: RecentWeights) -> str | None:
    """The checkpoint to start with: the one named, else (unless $RESNEXT_GUI_WEIGHTS names one) the last chosen."""
    if weights is None and not os.environ.get(ENV_WEIGHTS):
        return recent.last()
    return weights


class ModelBanner(QFrame):
    """Shown while there are no weights: what to do, and the two buttons that do it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(self)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download ImageNet weights (96 MB)")
        self.open_weights_button = QPushButton("Open weights file…")
        row.addWidget(self.text, 1)
        row.addWidget(self.download_button)
        row.addWidget(self.open_weights_button)
        self.hide()


class ModelController(QObject):
    """Asks the worker for models and says which one is in use (``stateChanged``: READY, MISSING or FAILED)."""

    stateChanged = Signal(object)  # ModelState
    placeholderWanted = Signal(str)  # what the empty view should say now
    modelChanged = Signal(object, str)  # the key of the model in use (ModelInfo.model_key), its weights file's name

    def __init__(self, worker: WorkerLike, settings: QSettings, messages: Messages, device: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker, self.settings, self.messages, self.parent_widget = worker, settings, messages, parent
        self.recent = RecentWeights(settings)
        self.folders = LastFolders(settings)  # Open Weights and Teach's dialogs open where each was used last
        self.device_choice = device
        self.weights = worker.first_model.weights  # the file asked for last (None: the lookup order)
        # The CPU runtime and precision every load asks for (the menus' choice), and those of the model in use,
        # which a refused choice falls back to
        self.backend: Backend = worker.first_model.backend
        self.precision: Precision = worker.first_model.precision
        self._in_use: tuple[Backend, Precision] = (self.backend, self.precision)
        self.info: ModelInfo | None = None
        self.state = ModelState.LOADING  # never FAILED: a refused file leaves the state as it was
        self.download_dialog: QProgressDialog | None = None
        self._download: DownloadJob | None = None
        self.teach_dialog: QWidget | None = None
        self._pending_weights: str | None = None  # a checkpoint the user chose, until it loads
        self.banner = ModelBanner(parent)
        self.device_label = plain_label("Loading model…")
        self.weights_label = plain_label()
        self.actions: Actions | None = None
        worker.loading.connect(self.device_label.setText)
        self.banner.download_button.clicked.connect(self.download_weights)
        self.banner.open_weights_button.clicked.connect(self.choose_weights)

    def attach(self, actions: Actions) -> None:
        """The menus' actions this controller keeps up to date (Recent Weights, devices, runtimes, bf16)."""
        self.actions = actions
        recent = actions.menus["recent"]
        recent.aboutToShow.connect(self.fill_recent_menu)
        recent.setEnabled(bool(self.recent.paths()))
        actions["device_cuda"].setToolTip("Checking for a CUDA GPU…")
        actions["bf16"].setToolTip("Checking this CPU for native bfloat16…")
        actions.check("device", self.device_choice)
        for key, backend in (("backend_torch", "torch"), ("backend_openvino", "openvino")):
            problem = runtime_problem(backend)  # a build offers only what it can run
            if problem:
                actions[key].setEnabled(False)  # no enabled_when: stays so
                actions[key].setToolTip(sentence(problem[0].upper() + problem[1:]))
        self._show_choices()

    # ---- loading ----
    def start(self) -> None:
        """The first model: the weights the window was started with (else the lookup order); none is no failure."""
        first = self.worker.first_model
        self._load(first.weights, first.device, explicit=False)

    def _load(self, weights: str | None, device: str, explicit: bool = True,
              failed: str = "Cannot use these weights") -> None:
        """Load a model with the runtime and precision chosen; ``failed``: the title of the message if it can't."""
        job = LoadJob(weights, device, explicit=explicit, backend=self.backend, precision=self.precision)
        self.worker.submit(job, functools.partial(self._on_loaded, job), functools.partial(self._on_load_failed, failed))

    def _show_choices(self) -> None:
        """The Device menu's ticks: the runtime and precision of the model in use, or the choice being loaded.
        A runtime named explicitly that could not be used (OpenVINO failed: PyTorch runs) shows the one running."""
        if self.actions is None:
            return
        shown: Backend = self.backend
        info = self.info
        if info is not None and info.device_type == "cpu" and shown != "auto" and info.backend != shown:
            shown = info.backend
        self.actions.check("backend", shown)
        self.actions["bf16"].setChecked(self.precision == "bf16")

    # ---- predicates for the actions table ----
    def cuda_available(self) -> bool:
        return self.info is not None and self.info.cuda_available

    def bf16_offered(self) -> bool:
        return self.info is not None and (self.info.bf16_native or self.info.precision == "bf16")

    def can_download(self) -> bool:
        return self.download_dialog is None

    def _refresh_actions(self) -> None:
        if self.actions is not None:
            self.actions.refresh()

    # ---- answers ----
    def _on_loaded(self, job: LoadJob, result: ModelInfo | ModelMissing) -> None:
        if isinstance(result, ModelMissing):
            self._missing(result.reason)
            return
        info = self.info = result
        self.weights = job.weights  # what a change of device or runtime loads again
        self.backend, self.precision = info.backend_choice, info.precision  # what it was loaded with
        self._in_use = (self.backend, self.precision)
        for key, asked, got in (("backend", job.backend, self.backend), ("precision", job.precision, self.precision)):
            if asked is not None and asked != got:  # a saved choice this build cannot run: the one used is kept
                self.settings.setValue(key, got)
        self._show_choices()
        self.state = ModelState.READY
        if self._pending_weights is not None:
            self.recent.remember(self._pending_weights)
            self._pending_weights = None
        self.banner.hide()
        self._show_info()
        if self.actions is not None:
            self.actions.menus["recent"].setEnabled(bool(self.recent.paths()))
            self.actions["device_cuda"].setToolTip("" if info.cuda_available else "No CUDA GPU found on this computer")
            self.actions["bf16"].setToolTip("About twice as fast on this CPU; probabilities differ slightly"
                                            if info.bf16_native else "This CPU has no native bfloat16: it would be slower")
        self._refresh_actions()
        if info.note:
            self.messages.show_status(info.note, 10000)
        self.modelChanged.emit(info.model_key, info.weights_short)
        self.stateChanged.emit(ModelState.READY)

    def _missing(self, reason: str) -> None:
        self.state = ModelState.MISSING
        self.device_label.setText("No model weights")
        self.banner.text.setText(BANNER)
        self.banner.text.setToolTip(plain_tooltip(reason))
        self.banner.show()
        self.placeholderWanted.emit("Waiting for model weights — see the bar above.")
        self.stateChanged.emit(ModelState.MISSING)

    def _on_load_failed(self, title: str, message: str) -> None:
        self._pending_weights = None
        if self.info is not None:  # the choices of the model still in use hold again, in the menu and the settings
            self.backend, self.precision = self._in_use
            self.settings.setValue("backend", self.backend)
            self.settings.setValue("precision", self.precision)
        self._show_choices()
        self._show_info()  # the status bar names the model still in use, not "Loading…"
        still = " The previous model stays in use." if self.info else ""
        self.messages.warning(title, sentence(message) + still)
        self.stateChanged.emit(ModelState.FAILED)

    def _show_info(self) -> None:
        info = self.info
        if info is None:
            self.device_label.setText("No model weights" if self.state is ModelState.MISSING else "Loading model…")
            return
        self.device_label.setText(info.device)
        self.weights_label.setText(f"Weights: {info.weights_short}")
        self.weights_label.setToolTip(plain_tooltip(info.weights))

    def model_saved(self, source: str, target: str) -> None:
        """A taught model was saved: if it is the one in use, it is named (and reloaded) by its saved file from now
        on, not by its temporary copy in the cache."""
        info = self.info
        if info is None or self.weights != source:
            return
        self.weights = target  # a change of device or runtime loads the saved file
        self.info = dataclasses.replace(info, weights=info.weights.replace(source, target),
                                        weights_short=Path(target).name)
        if self.recent.last() == source:  # the next start, and Recent Weights, open the saved file
            self.recent.forget(source)
            self.recent.remember(target)
        self._show_info()
        self.modelChanged.emit(self.info.model_key, self.info.weights_short)

    # ---- weights ----
    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Open Weights", self.folders.folder("weights"),
                                              "Checkpoints (*.pth *.pt *.safetensors);;All files (*)")
        if path:
            self.folders.remember("weights", path)
            self.load_weights(path)

    def load_weights(self, path: str) -> None:
        """Use this checkpoint; once it loads it is remembered for the next start and under Recent Weights."""
        self._pending_weights = path
        self._load(path, self.device_choice)

    def fill_recent_menu(self, menu: QMenu | None = None) -> None:
        menu = menu or (self.actions.menus["recent"] if self.actions else None)
        if menu is None:
            return
        menu.clear()
        for path in self.recent.paths():
            act = menu.addAction(Path(path).name, functools.partial(self.open_recent, path))
            act.setStatusTip(path)
            act.setToolTip(plain_tooltip(path))
        menu.setToolTipsVisible(True)

    def open_recent(self, path: str) -> None:
        if not os.path.isfile(path):
            self.recent.forget(path)
            if self.actions is not None:
                self.actions.menus["recent"].setEnabled(bool(self.recent.paths()))
            self.messages.warning("Weights file not found", f"{path} is no longer there.")
            return
        self.load_weights(path)

    # ---- device and runtime ----
    def set_device(self, device: str) -> None:
        self.device_choice = device
        self.settings.setValue("device", device)
        if self.actions is not None:
            self.actions.check("device", device)
        if self.info is not None:
            self._load(self.weights, device, failed="Cannot use this device")

    def set_backend(self, backend: Backend) -> None:
        """Another CPU runtime: the model is loaded again with it (also when none is loaded yet, so a start that
        found no usable model tries again); if it can't be used, the menu and the settings go back."""
        problem = runtime_problem(backend)
        if problem:  # not offered (the action is disabled); a stray call changes nothing
            self._show_choices()
            self.messages.show_status(sentence(problem[0].upper() + problem[1:]), 8000)
            return
        self.backend = backend
        self.settings.setValue("backend", backend)
        self._show_choices()
        self._load(self.weights, self.device_choice, explicit=self.info is not None, failed="Cannot use this CPU runtime")

    def set_bf16(self, on: bool) -> None:
        self.precision = "bf16" if on else "fp32"
        self.settings.setValue("precision", self.precision)
        if self.info is not None:
            self._load(self.weights, self.device_choice, failed="Cannot use this precision")

    # ---- download ----
    def download_weights(self) -> None:
        dlg = QProgressDialog("Downloading the ImageNet weights (96 MB)…", "Cancel", 0, 0, self.parent_widget)
        dlg.setWindowTitle("Download ImageNet weights")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.setMinimumWidth(max(420, dlg.fontMetrics().horizontalAdvance(dlg.windowTitle()) + 160))  # title never cut
        dlg.canceled.connect(self._cancel_download)
        dlg.open()
        if self.parent_widget is not None:  # over the window, not in a corner of the screen
            dlg.move(self.parent_widget.geometry().center() - dlg.rect().center())
        self.download_dialog = dlg
        self.banner.download_button.setEnabled(False)
        self._refresh_actions()
        job = self._download = DownloadJob()
        self.worker.submit(job, self._on_downloaded, self._on_download_failed, self._on_download_progress)

    def _cancel_download(self) -> None:
        if self._download is not None:
            self.worker.cancel(self._download)
        if self.download_dialog is not None:
            self.download_dialog.setLabelText("Cancelling…")

    def _download_cancelled(self) -> bool:
        return self._download is not None and self._download.cancel.is_set()

    def _on_download_progress(self, done: int, total: int) -> None:
        dlg = self.download_dialog
        if dlg is not None and total and not self._download_cancelled():
            dlg.setRange(0, 1000)
            dlg.setValue(int(1000 * done / total))
            dlg.setLabelText(f"Downloading the ImageNet weights… {done / 2**20:.1f} of {total / 2**20:.1f} MB")

    def _close_download(self) -> None:
        dlg, self.download_dialog = self.download_dialog, None
        if dlg is not None:
            dlg.canceled.disconnect()
            dlg.reset()  # stops QProgressDialog's own timer, which would show it again
            dlg.hide()
            dlg.deleteLater()
        self.banner.download_button.setEnabled(True)
        self._refresh_actions()

    def _on_downloaded(self, path: str) -> None:
        self._close_download()
        self._download = None
        self.messages.show_status(f"Weights saved and verified: {path}", 8000)
        self._load(None, self.device_choice, explicit=False)  # found where torchvision keeps its downloads

    def _on_download_failed(self, message: str) -> None:
        self._close_download()
        cancelled, self._download = self._download_cancelled(), None
        if cancelled:
            self.messages.show_status(message, 8000)
            return
        box = self.messages.warning("Download failed", message)
        # whatever stopped the download (no internet, a proxy, a wrong checksum), a file one has is the way on
        opener = box.addButton("Open Weights File…", QMessageBox.ButtonRole.ActionRole)
        opener.clicked.connect(self.choose_weights)

    # ---- Help → About, File → Teach New Classes ----
    def about(self) -> None:
        info = self.info
        versions = info.versions if info else {}
        text = (
            f"<h3>resnext-gui {__version__}</h3>"
            "<p>ResNeXt-50 (32×4d) image classifier — Xie et al., <i>Aggregated Residual Transformations for Deep "
            "Neural Networks</i>, CVPR 2017 — with Grad-CAM heatmaps (Selvaraju et al., ICCV 2017).</p>"
            f"<p><b>Weights:</b> {html.escape(info.weights if info else 'none loaded')}<br>"
            f"<b>Device:</b> {html.escape(info.device if info else '—')}</p>"
            f"<p>{' · '.join(f'{name} {version}' for name, version in sorted(versions.items()))}"
            f"{' · ' if versions else ''}PySide6 {PYSIDE_VERSION} · Python {platform.python_version()}</p>"
        )
        QMessageBox.about(self.parent_widget, "About resnext-gui", text)

    def teach(self) -> QWidget:
        """One dialog, kept for the session (training goes on while it is hidden)."""
        from .teach_dialog import TeachDialog

        if self.teach_dialog is None:
            self.teach_dialog = TeachDialog(self.worker, self.messages, self.parent_widget, self.folders)
            self.teach_dialog.modelSaved.connect(self.model_saved)
            self.teach_dialog.modelUsed.connect(self.load_weights)
        dialog = self.teach_dialog
        assert isinstance(dialog, TeachDialog)
        dialog.show()
        dialog.raise_()
        return dialog
