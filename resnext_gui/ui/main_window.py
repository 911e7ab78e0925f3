"""The main window: composes the gallery, the view, the control panel and the pieces that drive them; takes drops.

What each piece does lives in it: ``intake`` (photos in), ``controller`` (the batch and the worker's answers),
``presenter`` (the photo shown), ``model`` (weights, device, download), ``commands`` (the menus, as data),
``messages`` (status text and dialogs) and ``window_settings`` (what is remembered).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QShowEvent,
)
from PySide6.QtWidgets import QMainWindow, QMenu, QProgressBar, QPushButton, QSplitter, QVBoxLayout, QWidget

from ..core.cam import METHOD_NAMES, method_layers
from ..core.kinds import BACKENDS, PRECISIONS, Layer, Method
from ..worker.runner import Worker, WorkerLike
from . import window_settings
from .actions import Actions
from .cam_methods import ScoreCamBar
from .controller import BatchController, ModelState
from .controls import ControlPanel
from .drop_overlay import DropOverlay
from .drops import can_accept
from .gallery import GalleryModel, GalleryView, Photo
from .gallery_filter import GalleryBar, GalleryFilter
from .image_view import MODES, ImageView
from .intake import Intake
from .library_ui import LibraryController, describe, library_path
from .messages import Messages
from .model_controller import ModelController, plain_label, startup_weights
from .presenter import APP_TITLE, IDLE_HINT, Presenter
from .recent import RecentWeights
from .text import plural


class MainWindow(QMainWindow):
    shown = Signal()
    # Emitted on the GUI thread, after the window has taken the worker's answer in:
    modelStateChanged = Signal(str)  # "ready" | "missing" | "failed"
    photoUpdated = Signal(int)  # a photo got its result, a recomputed result, its full view, or a note
    scanFinished = Signal(int)  # a drop's files are all in the gallery (how many)

    def __init__(self, weights: str | None = None, device: str | None = None, settings: QSettings | None = None,
                 worker: WorkerLike | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("resnext-gui", "resnext-gui")
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self._shown_once = False
        self.stopped_cleanly = False
        settings_notes = window_settings.check_choices(self.settings)  # before anything reads them
        device = device or str(self.settings.value("device", "auto", type=str))
        if worker is None:
            screen = QGuiApplication.primaryScreen()
            worker = Worker(startup_weights(weights, RecentWeights(self.settings)), device, self,
                            pixel_ratio=screen.devicePixelRatio() if screen else 1.0,
                            backend=window_settings.read_str(self.settings, "backend", BACKENDS, "auto"),
                            precision=window_settings.read_str(self.settings, "precision", PRECISIONS, "fp32"),
                            library=library_path(self.settings))
        self.worker = worker
        self.messages = Messages(self)
        self.messages.listen(worker)
        if settings_notes:
            self.messages.dialog("Settings reset", "\n".join(settings_notes))
        self.photos = GalleryModel(self)
        self._build()
        self.controller = BatchController(self.photos, worker, self.messages, self.current_photo, self,
                                          selection=lambda: self.presenter.selected_photos())
        self.presenter = Presenter(self.photos, self.proxy, self.gallery, self.view, self.controls, self.controller,
                                   self.messages, self.settings, self)
        self.intake = Intake(self.messages, self.settings, self)
        self.library = LibraryController(self.photos, self.controller, worker, self.messages, self)
        self.model = ModelController(worker, self.settings, self.messages, device, self)
        self.outer.insertWidget(0, self.model.banner)
        self.commands = Actions(self, {
            "can_undo": self.controller.can_undo, "can_download": self.model.can_download,
            "cuda_available": self.model.cuda_available, "bf16_offered": self.model.bf16_offered,
            "has_photo": lambda: self.current_photo() is not None, "can_retry": self._can_retry,
        })
        self.commands.build(self.menuBar())
        self.model.attach(self.commands)
        self._build_status_bar()
        self._connect()
        window_settings.restore(self, self.settings)

    # ------------------------------------------------------------------ composition
    def _build(self) -> None:
        self.central = QWidget(self)
        outer = self.outer = QVBoxLayout(self.central)
        outer.setContentsMargins(6, 6, 6, 6)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(self)
        g = QVBoxLayout(left)
        g.setContentsMargins(0, 0, 0, 0)
        self.proxy = GalleryFilter(self)
        self.proxy.setSourceModel(self.photos)
        self.gallery_bar = GalleryBar(self.proxy, left)
        self.gallery = GalleryView(left)
        self.gallery.setModel(self.proxy)
        self.gallery_bar.below = self.gallery  # Down in the search box
        g.addWidget(self.gallery_bar)
        self.library_search = QPushButton(left)  # the search box's text, looked for in every earlier day's photos
        self.library_search.setFlat(True)
        self.library_search.setStyleSheet("text-align: left; padding: 2px 4px; color: palette(link); text-decoration: underline;")
        self.library_search.setCursor(Qt.CursorShape.PointingHandCursor)
        self.library_search.setToolTip("Find photos classified on any earlier day, also those not in the gallery (Ctrl+Shift+F)")
        self.library_search.hide()
        g.addWidget(self.library_search)
        g.addWidget(self.gallery, 1)
        split.addWidget(left)
        self.view = ImageView(self)
        self.view.set_placeholder("Loading model…\nYou can already drop photos or folders here.")
        split.addWidget(self.view)
        self.controls = ControlPanel(self)
        split.addWidget(self.controls)
        for i, stretch in enumerate((0, 1, 0)):
            split.setStretchFactor(i, stretch)
        split.setSizes([300, 700, 260])
        split.setChildrenCollapsible(False)
        self.splitter = split
        outer.addWidget(split, 1)
        self.setCentralWidget(self.central)
        self.drop_overlay = DropOverlay(self.central)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.time_label = plain_label()
        self.summary_label = plain_label()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%v / %m")
        self.progress.hide()
        self.score_bar = ScoreCamBar()
        bar.addWidget(self.model.device_label)
        bar.addWidget(self.model.weights_label, 1)
        bar.addPermanentWidget(self.summary_label)
        bar.addPermanentWidget(self.time_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.score_bar)

    def _connect(self) -> None:
        self.messages.status.connect(self.statusBar().showMessage)
        c, p, controls = self.controller, self.presenter, self.controls
        c.updated.connect(lambda photo: self.photoUpdated.emit(photo.item_id))
        c.progressChanged.connect(self._show_progress)
        c.summaryChanged.connect(self.summary_label.setText)
        c.answerTime.connect(self.time_label.setText)
        c.undoChanged.connect(self._on_undo_changed)
        c.cleared.connect(lambda: self.time_label.setText(""))
        self.intake.arrived.connect(c.enqueue)
        c.alreadyKnown.connect(self.intake.already_known)
        self.intake.scanFinished.connect(self.scanFinished)
        self.model.modelChanged.connect(c.set_model)  # answers another model gave are marked
        self.model.stateChanged.connect(self._on_model_state)
        self.model.placeholderWanted.connect(self.view.set_placeholder)
        p.titleChanged.connect(self.setWindowTitle)
        self.gallery.customContextMenuRequested.connect(lambda pos: self.gallery_menu_for(pos).popup(
            self.gallery.viewport().mapToGlobal(pos)))
        self.gallery_bar.changed.connect(p.filter_changed)
        self.gallery_bar.search.textChanged.connect(self._offer_library_search)
        self.library_search.clicked.connect(self.search_library)
        self.library.infoChanged.connect(lambda info: self.summary_label.setToolTip(describe(info)))
        self.view.doubleClicked.connect(self.toggle_full_screen)
        controls.modeChosen.connect(self.set_mode)
        controls.opacityChanged.connect(self.view.set_opacity)
        controls.colormapChanged.connect(self.view.set_colormap)
        controls.layerChosen.connect(self._on_layer_chosen)
        controls.methodChosen.connect(self._on_method_chosen)
        p.cam.scoreProgress.connect(self.score_bar.show_progress)
        p.cam.faithText.connect(controls.top5.set_score)
        self.score_bar.cancelClicked.connect(lambda: p.cam.cancel_score())
        controls.stopClicked.connect(self.stop)
        controls.clearClicked.connect(self.clear)

    def start(self) -> None:
        """Start the worker (it imports torch and loads the model while the window is already up); last time's
        gallery follows from the results library once the model is there."""
        self.worker.start()
        self.model.start()  # the first model: loaded before anything else the worker is asked
        self.library.restore()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.fit_to_screen)  # again, now that the window manager's frame is known
            self.shown.emit()

    # ------------------------------------------------------------------ between the pieces
    def _on_model_state(self, state: ModelState) -> None:
        if state is not ModelState.FAILED:
            self.controller.set_model_state(state)
        if state is ModelState.READY:
            self.presenter.cam.forget()  # another model: scores computed with the last one are not about it
        if state is ModelState.READY and not len(self.photos):
            self.view.set_placeholder(IDLE_HINT)
        self.modelStateChanged.emit(state.value)

    def _show_progress(self, done: int, total: int) -> None:
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.progress.setVisible(bool(total))

    def _on_layer_chosen(self, layer: Layer) -> None:
        self.settings.setValue("layer", layer)
        self.controller.set_layer(layer)
        self.presenter.refresh()

    def _on_method_chosen(self, method: Method) -> None:
        self.settings.setValue("cam_method", method)
        self.set_cam_method(method)
        self.settings.setValue("layer", self.controls.layer)
        self.presenter.refresh()

    def set_cam_method(self, method: Method) -> None:
        """One method for every photo; only the layers it is offered at can be chosen with it."""
        layer = self.controls.offer_layers(method_layers(method),
                                           f"{METHOD_NAMES.get(method, method)} is not offered at this layer")
        self.controller.set_layer(layer)
        self.controller.set_method(method)
        self.presenter.cam.set_method(method)

    def _can_retry(self) -> bool:
        return bool(self.controller.retry_scope())

    def _on_undo_changed(self) -> None:
        self.commands["undo"].setText("&" + self.controller.undo_text())  # "Undo Remove", "Undo Clear"
        self.commands.refresh()

    def current_photo(self) -> Photo | None:
        return self.presenter.current_photo()

    def select(self, photo: Photo) -> bool:
        return self.presenter.select(photo)

    def add_paths(self, paths: list[str]) -> int:
        return self.intake.add_paths(paths)

    def set_mode(self, mode: str) -> None:
        """Original, Overlay or Heatmap: the view, the panel's buttons and View's actions agree."""
        mode = mode if mode in MODES else "overlay"
        self.view.set_mode(mode)
        self.controls.show_mode(mode)
        self.commands.check("mode", mode)

    def gallery_menu_for(self, pos: QPoint) -> QMenu:
        """The gallery's context menu for the photo at ``pos`` (which becomes the selected one)."""
        self.presenter.gallery_menu_pos(pos)
        self.gallery_menu = self.commands.context_menu(QMenu(self))
        return self.gallery_menu

    def stop(self) -> None:
        """Esc: leave full screen; else drop the photos still waiting."""
        if self.isFullScreen():
            self.showNormal()
            return
        self.intake.cancel()
        self.presenter.cam.cancel_score()
        self.controller.stop()

    def clear(self) -> None:
        """Stop and empty the gallery; Edit → Undo Clear (Ctrl+Z) brings the photos back."""
        self.intake.cancel()
        self.controller.clear()

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _offer_library_search(self, text: str) -> None:
        text = text.strip()
        self.library_search.setVisible(bool(text))
        self.library_search.setText(f"Search the library for “{text}”…")

    def search_library(self) -> None:
        """Edit → Search the Library…: every photo classified on any day, by label or name."""
        self.library.open_library(self.gallery_bar.search.text())

    def forget_photo(self) -> None:
        self.library.forget_selected(self.presenter.selected_photos())

    def write_keywords(self) -> None:
        self.library.write_keywords_dialog(self.presenter.selected_photos())

    def show_log_folder(self) -> bool:
        """Help → Show Log Folder: the folder of the app's log, in the file manager."""
        from ..core import logs

        folder = logs.log_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.messages.warning("Show Log Folder", f"The log folder {folder} cannot be made: {exc.strerror or exc}")
            return False
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.messages.dialog("Show Log Folder", f"The log is in {folder}")
            return False
        return True

    def fit_to_screen(self) -> None:
        window_settings.fit_to_screen(self)

    # ------------------------------------------------------------------ drops and close
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.source() is not None:
            return  # our own overlay being dragged out
        if can_accept(event.mimeData()):
            event.acceptProposedAction()
            n = len(event.mimeData().urls())
            self.view.show_placeholder(False)  # the drop label would sit across the hint, fragments showing each side
            self.drop_overlay.show_over(f"Drop to add {plural(n, 'item')}" if n else "Drop to add the image")

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # noqa: N802
        self.drop_overlay.hide()
        self.view.show_placeholder(True)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.drop_overlay.hide()
        self.view.show_placeholder(True)
        if self.intake.add_mime(event.mimeData()):
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        window_settings.save(self, self.settings)
        self.hide()  # gone at once for the user, even if the worker needs a moment to finish its photo
        self.intake.stop()
        self.library.closing()  # the gallery as it is now, written by the worker as it stops
        self.stopped_cleanly = self.worker.stop()
        event.accept()
