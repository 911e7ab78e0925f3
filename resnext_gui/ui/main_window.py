"""The main window: wires the gallery model, the views and the worker; menus, drops, settings and the status bar."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import QByteArray, QItemSelectionModel, QModelIndex, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QScrollArea,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..core.colormap import COLORMAPS
from ..core.paths import is_image_name
from ..core.records import write_records
from ..scanner import FolderScanner
from ..worker import ModelInfo, PhotoResult, Worker
from .drop_overlay import DropOverlay
from .drops import can_accept, read_mime
from .gallery import GalleryModel, GalleryView, Photo, PhotoRole, Status
from .gallery_filter import GalleryBar, GalleryFilter
from .image_view import MODES, ImageView
from .legend import HeatmapLegend
from .paced import PacedQueue
from .photo_actions import PhotoActions
from .photo_export import overlay_metadata, overlay_name, save_png, stem_of
from .recent import RecentWeights
from .text import percent, plain_tooltip, sentence
from .top5 import Top5Panel

LAYERS = [("layer4", "Last stage (7×7, default)"), ("layer3", "Stage before (14×14, finer)")]
EXPORT_FORMATS = {"CSV (*.csv)": "csv", "JSON (*.json)": "json"}
APP_TITLE = "ResNeXt Classifier"
IDLE_HINT = "Drop photos or folders here\n(or File → Open, Ctrl+O; paste with Ctrl+V)"
ARRIVAL_SLICE = 32  # photos taken into the gallery at a time while a folder is being listed


def _plain_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # names, labels and paths are never read as HTML
    return label


class MainWindow(PhotoActions, QMainWindow):
    shown = Signal()
    # Emitted on the GUI thread, after the window has taken the worker's answer in:
    modelStateChanged = Signal(str)  # "ready" | "missing" | "failed"
    photoUpdated = Signal(int)  # a photo got its result, a recomputed result, its full view, or a note
    scanFinished = Signal(int)  # a drop's files are all in the gallery (how many)

    def __init__(self, weights: str | None = None, device: str | None = None, settings: QSettings | None = None,
                 worker: Worker | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("resnext-gui", "resnext-gui")
        self.recent = RecentWeights(self.settings)
        if weights is None and worker is None and not os.environ.get("RESNEXT_GUI_WEIGHTS"):
            weights = self.recent.last()  # the checkpoint chosen last time, if it is still there
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.model_info: ModelInfo | None = None
        self.model_state = "loading"  # loading | ready | missing
        self.layer = "layer4"
        self.selected_rank = 1
        self.last_message: QMessageBox | None = None
        self.download_dialog: QProgressDialog | None = None
        self._shown_once = False
        self._batch = [0, 0]  # photos in the current batch, and how many have their answer
        self._scans: set[int] = set()  # drops still being listed
        self._scan_new: dict[int, bool] = {}  # request id -> its first photo still to be selected
        self._skipped: list[tuple[str, str]] = []
        # What the scanner finds, in slices of ARRIVAL_SLICE photos, and the scan's end in its place.
        self._arrivals: PacedQueue[tuple[int, list[str] | None, int, bool]] = PacedQueue(self._take_arrival, self)
        self._answers: PacedQueue[PhotoResult] = PacedQueue(self._show_answer, self)
        self._views_asked: set[int] = set()  # full views on their way
        self._views_failed: set[int] = set()  # asked again only when the user selects the photo again
        self._layer_asked: dict[int, str] = {}  # recomputes on their way: photo -> layer
        self._layer_failed: set[tuple[int, str]] = set()  # never asked again for that photo and layer
        self._pending_weights: str | None = None  # a checkpoint the user chose, until it loads
        self._cleared: list[Photo] = []  # what the last Clear removed (Undo brings it back)
        self._unnamed = 0  # images without a file: "pasted image 1", "dropped image 2"
        self._download_cancelled = False
        self.device_choice = device or str(self.settings.value("device", "auto"))
        screen = QGuiApplication.primaryScreen()
        self.worker = worker or Worker(weights, self.device_choice, self,
                                       pixel_ratio=screen.devicePixelRatio() if screen else 1.0,
                                       backend=str(self.settings.value("backend", "auto")),
                                       precision=str(self.settings.value("precision", "fp32")))
        self.scanner = FolderScanner(self)
        self.photos = GalleryModel(self)
        self._build()
        self._connect()
        self._restore_settings()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 6)

        self.banner = QFrame(self)
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        b = QHBoxLayout(self.banner)
        self.banner_text = QLabel("")
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download ImageNet weights (96 MB)")
        self.open_weights_button = QPushButton("Open weights file…")
        b.addWidget(self.banner_text, 1)
        b.addWidget(self.download_button)
        b.addWidget(self.open_weights_button)
        self.banner.hide()
        outer.addWidget(self.banner)

        split = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(self)
        g = QVBoxLayout(left)
        g.setContentsMargins(0, 0, 0, 0)
        self.proxy = GalleryFilter(self)
        self.proxy.setSourceModel(self.photos)
        self.gallery_bar = GalleryBar(self.proxy, left)
        self.gallery = GalleryView(left)
        self.gallery.setModel(self.proxy)
        g.addWidget(self.gallery_bar)
        g.addWidget(self.gallery, 1)
        split.addWidget(left)

        self.view = ImageView(self)
        self.view.set_placeholder("Loading model…\nYou can already drop photos or folders here.")
        split.addWidget(self.view)

        side = QWidget(self)
        s = QVBoxLayout(side)
        s.setContentsMargins(6, 0, 0, 0)
        self.top5 = Top5Panel(side)
        s.addWidget(self.top5)
        s.addWidget(QLabel("Show"))
        modes = QHBoxLayout()
        self.mode_buttons: list[QPushButton] = []  # no QButtonGroup: Tab reaches each one; _set_mode checks one
        tips = ("The photo alone (Ctrl+1)", "The heatmap over the photo (Ctrl+2)", "The heatmap alone (Ctrl+3)")
        for key, text, tip in zip(MODES, ("Original", "Overlay", "Heatmap"), tips):
            btn = QPushButton(text)
            btn.setCheckable(True)
            btn.setToolTip(tip)
            btn.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # reachable with Tab on every platform
            btn.setProperty("mode", key)
            btn.clicked.connect(lambda _=False, k=key: self._set_mode(k))
            self.mode_buttons.append(btn)
            modes.addWidget(btn)
        s.addLayout(modes)
        s.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setAccessibleName("Heatmap opacity")
        self.opacity.setToolTip("How strongly the heatmap covers the photo in Overlay")
        s.addWidget(self.opacity)
        s.addWidget(QLabel("Colour map"))
        self.cmap = QComboBox()
        self.cmap.addItems(list(COLORMAPS))
        self.cmap.setToolTip("The colours of the heatmap, from low to high attention")
        s.addWidget(self.cmap)
        self.legend = HeatmapLegend(side)
        s.addWidget(self.legend)
        s.addWidget(QLabel("Grad-CAM layer (all photos)"))
        self.layer_box = QComboBox()
        for key, text in LAYERS:
            self.layer_box.addItem(text, key)
        self.layer_box.setToolTip("Applies to every photo: each one is recomputed with this layer when you show it")
        s.addWidget(self.layer_box)
        buttons = QHBoxLayout()
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop: drop the photos still waiting (Esc)")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Stop and remove every photo from the gallery")
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.clear_button)
        s.addLayout(buttons)
        s.addStretch(1)
        side.setMinimumWidth(240)
        panel = QScrollArea(self)  # on a small or HiDPI screen the controls scroll rather than push the window
        panel.setWidget(side)
        panel.setWidgetResizable(True)
        panel.setFrameShape(QFrame.Shape.NoFrame)
        panel.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        panel.setMinimumWidth(side.minimumWidth() + panel.verticalScrollBar().sizeHint().width())
        split.addWidget(panel)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([300, 700, 260])
        split.setChildrenCollapsible(False)
        self.splitter = split
        outer.addWidget(split, 1)
        self.setCentralWidget(central)
        self.drop_overlay = DropOverlay(central)

        bar = self.statusBar()
        self.device_label = _plain_label("Loading model…")
        self.weights_label = _plain_label()
        self.time_label = _plain_label()
        self.summary_label = _plain_label()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.progress.hide()
        bar.addWidget(self.device_label)
        bar.addWidget(self.weights_label, 1)
        bar.addPermanentWidget(self.summary_label)
        bar.addPermanentWidget(self.time_label)
        bar.addPermanentWidget(self.progress)
        self._build_menus()

    def _action(self, menu, text, slot, shortcut=None, tip=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open Photos…", self.open_files, QKeySequence.StandardKey.Open)
        self._action(f, "Open &Folder…", self.open_folder, "Ctrl+Shift+O")
        self._action(f, "&Paste Image", self.paste, QKeySequence.StandardKey.Paste)
        f.addSeparator()
        self._action(f, "Open &Weights…", self.choose_weights, tip="Use your own ResNeXt-50 checkpoint")
        self.recent_menu = f.addMenu("&Recent Weights")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.recent_menu.setEnabled(bool(self.recent.paths()))
        self.download_action = self._action(f, "&Download ImageNet Weights…", self.download_weights)
        self._action(f, "&Teach New Classes…", self.teach, tip="Train a model on your own classes: one folder of photos each")
        f.addSeparator()
        self.save_action = self._action(f, "&Save Overlay as PNG…", self.save_overlay, QKeySequence.StandardKey.Save)
        self._action(f, "&Export Results…", self.export_dialog, "Ctrl+E", tip="All processed photos as CSV or JSON")
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        e = mb.addMenu("&Edit")
        self.undo_action = self._action(e, "&Undo Clear", self.undo_clear, QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)
        e.addSeparator()
        self.copy_action = self._action(e, "&Copy Result and Overlay", self.copy, QKeySequence.StandardKey.Copy,
                                        tip="The top 5 as text and the overlay as an image")
        self.remove_action = self._action(e, "&Remove Photo", self.remove_selected, QKeySequence.StandardKey.Delete)
        self.retry_action = self._action(e, "Re&try", self.retry, "Ctrl+R", tip="Classify failed or stopped photos again")
        self._action(e, "&Find…", lambda: self.gallery_bar.search.setFocus(), QKeySequence.StandardKey.Find)
        e.addSeparator()
        self._action(e, "S&top", self.stop, "Esc")
        self._action(e, "&Clear All", self.clear, "Ctrl+Shift+Backspace")

        v = mb.addMenu("&View")
        self.mode_actions = QActionGroup(self)
        for key, text, sc in zip(MODES, ("&Original", "O&verlay", "&Heatmap Only"), ("Ctrl+1", "Ctrl+2", "Ctrl+3")):
            act = self._action(v, text, lambda _=False, k=key: self._set_mode(k), sc)
            act.setCheckable(True)
            act.setData(key)
            self.mode_actions.addAction(act)
        v.addSeparator()
        for rank in range(1, 6):
            self._action(v, f"Heatmap of Class {rank}", lambda _=False, r=rank: self.top5.select(r), str(rank))
        v.addSeparator()
        zoom_in = self._action(v, "Zoom &In", lambda: self.view.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn)
        zoom_in.setShortcuts([QKeySequence(QKeySequence.StandardKey.ZoomIn), QKeySequence("+"), QKeySequence("=")])
        zoom_out = self._action(v, "Zoom &Out", lambda: self.view.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut)
        zoom_out.setShortcuts([QKeySequence(QKeySequence.StandardKey.ZoomOut), QKeySequence("-")])
        self._action(v, "&Fit in Window", self.view.fit, "0")
        self._action(v, "&Actual Size", self.view.actual_size, "Ctrl+0")
        self.fullscreen_action = self._action(v, "&Full Screen", self.toggle_full_screen, QKeySequence.StandardKey.FullScreen)
        self.fullscreen_action.setShortcuts([QKeySequence("F11"), QKeySequence(QKeySequence.StandardKey.FullScreen)])

        d = mb.addMenu("&Device")
        self.device_actions = QActionGroup(self)
        self.device_actions.setExclusive(True)
        for key, text in (("auto", "&Auto (GPU when available)"), ("cpu", "&CPU"), ("cuda", "C&UDA")):
            act = self._action(d, text, lambda _=False, k=key: self.set_device(k))
            act.setCheckable(True)
            act.setData(key)
            self.device_actions.addAction(act)
        self.cuda_action = [a for a in self.device_actions.actions() if a.data() == "cuda"][0]
        self.cuda_action.setEnabled(False)
        self.cuda_action.setToolTip("Checking for a CUDA GPU…")
        d.setToolTipsVisible(True)
        self._build_backend_menu(d)

        h = mb.addMenu("&Help")
        self._action(h, "&About resnext-gui", self.about)

    def _connect(self) -> None:
        w = self.worker
        w.loading.connect(self._on_loading)
        w.modelReady.connect(self._on_model_ready)
        w.modelMissing.connect(self._on_model_missing)
        w.modelFailed.connect(self._on_model_failed)
        w.classified.connect(self._answers.put)
        w.recomputed.connect(self._on_recomputed)
        w.recomputeFailed.connect(self._on_recompute_failed)
        w.viewReady.connect(self._on_view_ready)
        w.viewFailed.connect(self._on_view_failed)
        w.downloadProgress.connect(self._on_download_progress)
        w.downloadFinished.connect(self._on_download_finished)
        self.scanner.found.connect(self._on_found)
        self.scanner.skipped.connect(self._on_skipped)
        self.scanner.finishedRequest.connect(self._on_scan_finished)
        self.photos.countsChanged.connect(self._update_summary)
        self.gallery.selectionModel().currentChanged.connect(self._on_current_changed)
        self.gallery.customContextMenuRequested.connect(self._gallery_menu)
        self.gallery_bar.changed.connect(self._on_filter_changed)
        self.view.doubleClicked.connect(self.toggle_full_screen)
        self.view.zoomChanged.connect(self._update_title)
        self.view.dragOut.connect(self._drag_out)
        self.download_button.clicked.connect(self.download_weights)
        self.open_weights_button.clicked.connect(self.choose_weights)
        self.stop_button.clicked.connect(self.stop)
        self.clear_button.clicked.connect(self.clear)
        self.top5.classChosen.connect(self._on_class_chosen)
        self.opacity.valueChanged.connect(lambda v: (self.view.set_opacity(v / 100), self.legend.set_opacity(v / 100)))
        self.cmap.currentTextChanged.connect(self.view.set_colormap)
        self.cmap.currentTextChanged.connect(self.legend.set_colormap)
        self.layer_box.currentIndexChanged.connect(self._on_layer_changed)

    def start(self) -> None:
        """Start the worker (it imports torch and loads the model while the window is already up)."""
        self.worker.start()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.fit_to_screen)  # again, now that the window manager's frame is known
            self.shown.emit()

    # ------------------------------------------------------------------ the model's state
    def _on_loading(self, text: str) -> None:
        self.device_label.setText(text)

    def _on_model_ready(self, info: ModelInfo) -> None:
        self.model_info = info
        self.model_state = "ready"
        if self._pending_weights is not None:
            self.recent.remember(self._pending_weights)
            self.recent_menu.setEnabled(True)
            self._pending_weights = None
        self.banner.hide()
        self._show_model_info()
        self.cuda_action.setEnabled(info.cuda_available)
        self.cuda_action.setToolTip("" if info.cuda_available else "No CUDA GPU found on this computer")
        if info.note:
            self.statusBar().showMessage(info.note, 10000)
        if not len(self.photos):
            self.view.set_placeholder(IDLE_HINT)
        self._set_waiting_text()
        self.modelStateChanged.emit("ready")

    def _show_model_info(self) -> None:
        info = self.model_info
        if info is None:
            self.device_label.setText("No model weights" if self.model_state == "missing" else "Loading model…")
            return
        self.device_label.setText(info.device)
        self.weights_label.setText(f"Weights: {info.weights_short}")
        self.weights_label.setToolTip(plain_tooltip(info.weights))

    def _on_model_missing(self, message: str) -> None:
        self.model_state = "missing"
        self.device_label.setText("No model weights")
        self.banner_text.setText(
            "<b>No model weights found.</b> This app never guesses with an untrained network. "
            "Download the official ImageNet weights (96 MB, checked and stored where torchvision keeps them), "
            "or open a ResNeXt-50 checkpoint you have. Photos you drop now will wait."
        )
        self.banner_text.setToolTip(plain_tooltip(message))
        self.banner.show()
        self.view.set_placeholder("Waiting for model weights — see the bar above.")
        self._set_waiting_text()
        self._update_progress()
        self.modelStateChanged.emit("missing")

    def _on_model_failed(self, message: str) -> None:
        self._pending_weights = None
        self._show_model_info()  # the status bar names the model still in use, not "Loading…"
        still = " The previous model stays in use." if self.model_info else ""
        self._message("Cannot use these weights", message + still, QMessageBox.Icon.Warning)
        self.modelStateChanged.emit("failed")

    def _set_waiting_text(self) -> None:
        self.photos.set_waiting_text({"missing": "Waiting for weights", "loading": "Waiting for the model"}
                                     .get(self.model_state, "Classifying…"))
        cur = self.current_photo()
        if cur is not None and cur.status is Status.QUEUED:
            self._show(cur)

    def _message(self, title: str, text: str, icon=QMessageBox.Icon.Information) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.last_message = box

    # ------------------------------------------------------------------ adding photos
    def add_paths(self, paths: list[str]) -> int:
        """Files and folders: listed on the scanner's thread, added to the gallery as they are found.

        Files that are plainly not photos (a name without an image extension) are counted, not added."""
        paths = [str(p) for p in paths]
        kept = [p for p in paths if is_image_name(p) or not os.path.isfile(p)]
        if len(kept) < len(paths):
            n = len(paths) - len(kept)
            self.statusBar().showMessage(f"{n} file{'s' if n != 1 else ''} skipped: not images.", 8000)
        if not kept:
            return 0
        request = self.scanner.scan(kept)
        self._scans.add(request)
        self._scan_new[request] = True
        return request

    def _on_found(self, request: int, paths: list[str]) -> None:
        if request in self._scans:  # else stopped or cleared meanwhile
            for start in range(0, len(paths), ARRIVAL_SLICE):
                self._arrivals.put((request, paths[start:start + ARRIVAL_SLICE], 0, False))

    def _take_arrival(self, item: tuple[int, list[str] | None, int, bool]) -> None:
        request, paths, count, cancelled = item
        if request not in self._scans:
            return
        if paths is None:
            self._finish_scan(request, count, cancelled)
        else:
            self._enqueue([(p, p) for p in paths], select=self._scan_new.pop(request, False))

    def _on_skipped(self, request: int, path: str, reason: str) -> None:
        if request in self._scans:
            self._skipped.append((path, reason))

    def _on_scan_finished(self, request: int, count: int, cancelled: bool) -> None:
        if request in self._scans:
            self._arrivals.put((request, None, count, cancelled))

    def _finish_scan(self, request: int, count: int, cancelled: bool) -> None:
        self._scans.discard(request)
        self._scan_new.pop(request, None)
        notes = []
        if count == 0 and not cancelled:
            notes.append("No images found in what was dropped.")
        if self._skipped:
            first = self._skipped[0]
            more = f" (and {len(self._skipped) - 1} more)" if len(self._skipped) > 1 else ""
            notes.append(f"Skipped {first[0]}: {first[1]}{more}.")
            self._skipped = []
        if notes:
            self.statusBar().showMessage(" ".join(notes), 8000)
        self.scanFinished.emit(count)

    def _enqueue(self, sources: list[tuple[object, str]], select: bool = True) -> None:
        new = self.photos.add(sources)  # type: ignore[arg-type]
        if len(new) < len(sources):
            n = len(sources) - len(new)
            self.statusBar().showMessage(f"{n} photo{'s are' if n != 1 else ' is'} already in the gallery.", 6000)
        for photo in new:
            self.worker.classify(photo.item_id, photo.source, self.layer)  # type: ignore[arg-type]
        self._batch[0] += len(new)
        self._update_progress()
        if new and (select or not self.gallery.currentIndex().isValid()):
            self.select(new[0])
            self.gallery.setFocus()

    def _unnamed_name(self, pasted: bool) -> str:
        self._unnamed += 1
        return f"{'pasted' if pasted else 'dropped'} image {self._unnamed}"

    def add_mime(self, mime, pasted: bool = False) -> bool:
        """Files, folders, image data from other programs, or pasted paths. Returns True if anything came in."""
        dropped = read_mime(mime)
        if dropped.paths:
            self.add_paths(dropped.paths)
        if dropped.data:
            self._enqueue([(data, name or self._unnamed_name(pasted)) for data, name in dropped.data])
        for what, why in dropped.refused:
            self.select(self.photos.add_failed(what, why))
        return bool(dropped)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.source() is not None:
            return  # our own overlay being dragged out
        if can_accept(event.mimeData()):
            event.acceptProposedAction()
            n = len(event.mimeData().urls())
            self.drop_overlay.show_over(f"Drop to add {n} item{'s' if n != 1 else ''}" if n else "Drop to add the image")

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.drop_overlay.hide()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.drop_overlay.hide()
        if self.add_mime(event.mimeData()):
            event.acceptProposedAction()

    def paste(self) -> None:
        if not self.add_mime(QGuiApplication.clipboard().mimeData(), pasted=True):
            self.statusBar().showMessage("Nothing to paste: copy an image or image files first.", 5000)

    def _last_folder(self) -> str:
        return str(self.settings.value("last_folder", str(Path.home())))

    def open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open Photos", self._last_folder(), "Images (*.jpg *.jpeg *.png *.bmp *.gif *.webp *.tif *.tiff);;All files (*)"
        )
        if files:
            self.settings.setValue("last_folder", str(Path(files[0]).parent))
            self.add_paths(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open Folder", self._last_folder())
        if folder:
            self.settings.setValue("last_folder", folder)
            self.add_paths([folder])

    # ------------------------------------------------------------------ answers from the worker
    def _show_answer(self, res: PhotoResult) -> None:
        photo = self.photos.set_result(res)
        if photo is None:
            return  # cleared meanwhile
        self._batch[1] += 1
        self._update_progress()
        if res.ok:
            self.time_label.setText(f"{res.ms:.0f} ms" + (f" · {res.note}" if res.note else ""))
        self._updated(photo)

    def _on_recomputed(self, res: PhotoResult) -> None:
        self._layer_asked.pop(res.item_id, None)
        photo = self.photos.set_recomputed(res)
        if photo is not None:
            self._updated(photo)

    def _on_recompute_failed(self, item_id: int, message: str) -> None:
        layer = self._layer_asked.pop(item_id, self.layer)
        self._layer_failed.add((item_id, layer))  # not asked again: the note says which map is shown
        photo = self.photos.get(item_id)
        if photo is not None and photo.result is not None:
            shown = dict(LAYERS).get(photo.result.layer, photo.result.layer).split(" (")[0].lower()
            self.photos.set_note(photo, f"Could not compute the new heatmap: {message} Showing the {shown} map.")
            self._updated(photo)

    def _on_view_ready(self, item_id: int, image: QImage) -> None:
        self._views_asked.discard(item_id)
        self.photos.cache_display(item_id, image)
        photo = self.photos.get(item_id)
        if photo is not None:
            self._updated(photo)

    def _on_view_failed(self, item_id: int, message: str) -> None:
        self._views_asked.discard(item_id)
        self._views_failed.add(item_id)
        photo = self.photos.get(item_id)
        if photo is not None:
            shown = " Showing its thumbnail." if photo.thumb is not None else ""
            self.photos.set_note(photo, f"Could not show the full photo: {message}{shown}")
            self._updated(photo)

    def _updated(self, photo: Photo) -> None:
        if self.current_photo() is photo:
            self._show(photo)
        self.photoUpdated.emit(photo.item_id)

    def _update_summary(self) -> None:
        counts = self.photos.counts()
        n = len(self.photos)
        parts = [f"{n} photo{'s' if n != 1 else ''}"] if n else []
        for status, word in ((Status.FAILED, "not classified"), (Status.QUEUED, "waiting"), (Status.STOPPED, "stopped")):
            if counts[status]:
                parts.append(f"{counts[status]} {word}")
        self.summary_label.setText(" · ".join(parts))

    def _update_progress(self) -> None:
        total, done = self._batch
        if total > 1 and done < total and self.model_state == "ready":  # nothing runs without a model
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat("%v / %m")
            self.progress.show()
        else:
            self.progress.hide()
        if done >= total:
            self._batch = [0, 0]

    # ------------------------------------------------------------------ selection and view
    def current_photo(self) -> Photo | None:
        index = self.gallery.currentIndex()
        return index.data(PhotoRole) if index.isValid() else None

    def select(self, photo: Photo) -> bool:
        """Make ``photo`` the current one and scroll to it; False when the gallery's filter hides it."""
        index = self.proxy.mapFromSource(self.photos.index(self.photos.row_of(photo)))
        if not index.isValid():
            return False
        self.gallery.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.gallery.scrollTo(index)
        return True

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.selected_rank = 1
        photo = current.data(PhotoRole) if current.isValid() else None
        if photo is not None:
            self._views_failed.discard(photo.item_id)  # the file may be back: try again
            self.view.fit()
            self._show(photo)
        else:
            self._show_nothing()

    def _on_filter_changed(self) -> None:
        if not self.gallery.currentIndex().isValid() and self.proxy.rowCount():
            self.gallery.setCurrentIndex(self.proxy.index(0, 0))
        elif self.gallery.currentIndex().isValid():
            self.gallery.scrollTo(self.gallery.currentIndex())
        shown, total = self.proxy.rowCount(), len(self.photos)
        if shown != total:
            self.statusBar().showMessage(f"Showing {shown} of {total} photos.", 5000)

    def _show_nothing(self) -> None:
        self.view.set_photo(None)
        self.view.set_map(None)
        self.view.set_placeholder(IDLE_HINT if not len(self.photos) else "No photo selected")
        self.top5.set_top([])
        self.top5.title.setText("Top 5")
        self._update_title()

    def _update_title(self) -> None:
        """The window title names the photo, its size, the class shown and the zoom."""
        photo = self.current_photo()
        if photo is None:
            self.setWindowTitle(APP_TITLE)
            return
        parts = [stem_of(photo) if not isinstance(photo.source, str) else Path(photo.name).name]
        res = photo.result
        if res is not None and res.size:
            parts.append(f"{res.size[0]}×{res.size[1]}")
        if photo.status is Status.DONE and res is not None and res.top:
            top = res.top[min(self.selected_rank, len(res.top)) - 1]
            parts.append(f"{top.label} {percent(top.prob)}")
        if self.view.zoom is not None:
            parts.append(f"{self.view.zoom:.0%}")
        self.setWindowTitle(" · ".join(parts) + f" — {APP_TITLE}")

    def _want_layer(self, photo: Photo) -> None:
        """The chosen Grad-CAM layer holds for every photo: one shown with another layer is recomputed, once."""
        res = photo.result
        if (photo.status is not Status.DONE or res is None or res.layer == self.layer or photo.source is None
                or self._layer_asked.get(photo.item_id) == self.layer or (photo.item_id, self.layer) in self._layer_failed):
            return
        self._layer_asked[photo.item_id] = self.layer
        self.worker.recompute(photo.item_id, photo.source, self.layer)  # type: ignore[arg-type]

    def _show(self, photo: Photo) -> None:
        self._want_layer(photo)
        self._show_now(photo)
        self._update_title()

    def _show_now(self, photo: Photo) -> None:
        res = photo.result
        if photo.status is Status.FAILED:
            self.view.set_photo(None)
            self.view.set_map(None)
            self.view.set_placeholder(f"Could not classify this file\n\n{sentence(photo.error or '')}")
            self.top5.set_top([], message=sentence(photo.error or ""))
            self.top5.title.setText("Top 5")
            return
        crop = res.crop if res is not None and res.ok else None
        display = self.photos.display(photo.item_id)
        if display is not None:
            self.view.set_photo(display, crop)
        else:
            # At once: the thumbnail, scaled; the full view follows as soon as the worker is free.
            self.view.set_photo(photo.thumb.toImage() if photo.thumb is not None else None, crop)
            self.view.set_placeholder(f"Loading {photo.name}…")
            if photo.source is not None and photo.item_id not in self._views_asked | self._views_failed:
                self._views_asked.add(photo.item_id)
                self.worker.view(photo.item_id, photo.source)  # type: ignore[arg-type]
        if photo.status is Status.DONE and res is not None:
            rank = min(self.selected_rank, len(res.top))
            self.view.set_map(res.maps[rank - 1] if res.maps is not None else None)
            self.top5.set_top(res.top, rank, message=photo.note or res.note or "")
            layer_text = dict(LAYERS).get(res.layer, res.layer).split(" (")[0].lower()
            pending = " (updating…)" if self._layer_asked.get(photo.item_id) == self.layer else ""
            self.top5.title.setText(f"Top {len(res.top)} · heatmap: {layer_text}{pending}")
            return
        self.view.set_map(None)
        waiting = "Stopped before it was classified" if photo.status is Status.STOPPED else self.photos.waiting_text
        self.top5.set_top([], message=photo.note or waiting)
        self.top5.title.setText("Top 5")
        if display is None and photo.thumb is None and photo.source is None:
            self.view.set_placeholder(f"{waiting}\n{photo.name}")

    def _on_class_chosen(self, rank: int) -> None:
        photo = self.current_photo()
        if photo is None or photo.result is None or not photo.result.ok or photo.result.maps is None:
            return
        self.selected_rank = rank
        self.view.set_map(photo.result.maps[rank - 1])
        self._update_title()

    def current_map(self):
        """The 8-bit heatmap the view shows now (for tests and "Save")."""
        return self.view._map

    def _set_mode(self, mode: str) -> None:
        self.view.set_mode(mode)
        for key, btn in zip(MODES, self.mode_buttons):
            btn.setChecked(key == mode)
        for act in self.mode_actions.actions():
            act.setChecked(act.data() == mode)
        self.opacity.setEnabled(mode == "overlay")
        self.legend.set_mode(mode)

    def _on_layer_changed(self, index: int) -> None:
        self.layer = self.layer_box.itemData(index)
        self.settings.setValue("layer", self.layer)
        self._layer_failed.clear()  # a new choice: each photo gets one try again
        photo = self.current_photo()
        if photo is not None:
            self._show(photo)

    # ------------------------------------------------------------------ stop / clear
    def stop(self) -> None:
        """Esc: leave full screen; else drop the photos still waiting."""
        if self.isFullScreen():
            self.showNormal()
            return
        self.scanner.cancel()
        self._scans.clear()
        self._scan_new.clear()
        self._arrivals.clear()
        stopped = self.photos.mark_stopped(self.worker.cancel_batch())
        self._batch = [0, 0]
        self._update_progress()
        running = self.photos.counts()[Status.QUEUED]  # already being computed: its answer still comes
        if stopped or running:
            text = f"Stopped {stopped} photo{'s' if stopped != 1 else ''} before classification."
            if running:
                text += f" {running} already in progress will finish."
            self.statusBar().showMessage(text, 8000)
        cur = self.current_photo()
        if cur is not None:
            self._show(cur)

    def clear(self) -> None:
        """Stop and empty the gallery; Edit → Undo Clear (Ctrl+Z) brings the photos back."""
        self.scanner.cancel()
        self._scans.clear()
        self._scan_new.clear()
        self._arrivals.clear()
        self.worker.cancel_batch()
        gone = self.photos.clear()
        if gone:
            self._cleared = gone
            self.undo_action.setEnabled(True)
            self.statusBar().showMessage(f"Cleared {len(gone)} photo{'s' if len(gone) != 1 else ''}. Undo with Ctrl+Z.", 10000)
        self._layer_asked.clear()
        self._views_asked.clear()
        self._views_failed.clear()
        self._batch = [0, 0]
        self._update_progress()
        self.view.set_photo(None)
        self.view.set_map(None)
        self.view.set_placeholder(IDLE_HINT)
        self.top5.set_top([])
        self.top5.title.setText("Top 5")
        self.time_label.setText("")
        self._update_title()

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # ------------------------------------------------------------------ weights and device
    def teach(self):
        """File → Teach New Classes…: one dialog, kept for the session (training goes on while it is hidden)."""
        from .teach_dialog import TeachDialog

        if getattr(self, "teach_dialog", None) is None:
            self.teach_dialog = TeachDialog(self.worker, self.device_choice, self)
        self.teach_dialog.device = self.device_choice
        self.teach_dialog.show()
        self.teach_dialog.raise_()
        return self.teach_dialog

    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open Weights", self._last_folder(), "Checkpoints (*.pth *.pt *.safetensors);;All files (*)")
        if path:
            self.load_weights(path)

    def load_weights(self, path: str) -> None:
        """Use this checkpoint; once it loads it is remembered for the next start and under Recent Weights."""
        self._pending_weights = path
        self.worker.load(path, self.device_choice)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent.paths():
            act = self.recent_menu.addAction(Path(path).name, lambda p=path: self._open_recent(p))
            act.setStatusTip(path)
            act.setToolTip(plain_tooltip(path))
        self.recent_menu.setToolTipsVisible(True)

    def _open_recent(self, path: str) -> None:
        if not os.path.isfile(path):
            self.recent.forget(path)
            self.recent_menu.setEnabled(bool(self.recent.paths()))
            self._message("Weights file not found", f"{path} is no longer there.", QMessageBox.Icon.Warning)
            return
        self.load_weights(path)

    def set_device(self, device: str) -> None:
        self.device_choice = device
        self.settings.setValue("device", device)
        for act in self.device_actions.actions():
            act.setChecked(act.data() == device)
        if self.model_info is not None:
            self.worker.load(self.worker.weights, device)

    def _build_backend_menu(self, menu) -> None:
        """Device menu: the CPU's runtime (Automatic / PyTorch / OpenVINO) and the opt-in bfloat16 mode.

        Choices are remembered and reload the model in the worker; bfloat16 is offered only where the CPU
        computes it natively (the worker says so once the model is loaded).
        """
        menu.addSeparator()
        self.backend_actions = QActionGroup(self)
        choice = str(self.settings.value("backend", "auto"))
        for key, text, tip in (("auto", "CPU Runtime: &Automatic", "OpenVINO when installed, else PyTorch"),
                               ("torch", "CPU Runtime: &PyTorch", "PyTorch's own forward pass"),
                               ("openvino", "CPU Runtime: &OpenVINO", "Faster on the CPU; PyTorch if it fails")):
            act = self._action(menu, text, lambda _=False, k=key: self._set_backend(backend=k), tip=tip)
            act.setCheckable(True)
            act.setData(key)
            act.setChecked(key == choice)
            self.backend_actions.addAction(act)
        self.bf16_action = self._action(menu, "Fast &bfloat16 (approximate)",
                                        lambda on: self._set_backend(precision="bf16" if on else "fp32"))
        self.bf16_action.setCheckable(True)
        self.bf16_action.setChecked(str(self.settings.value("precision", "fp32")) == "bf16")
        self.bf16_action.setEnabled(False)
        self.bf16_action.setToolTip("Checking this CPU for native bfloat16…")

        def on_ready(info: ModelInfo) -> None:
            self.bf16_action.setEnabled(info.bf16_native or info.precision == "bf16")
            self.bf16_action.setToolTip("About twice as fast on this CPU; probabilities differ slightly"
                                        if info.bf16_native else "This CPU has no native bfloat16: it would be slower")

        self.worker.modelReady.connect(on_ready)

    def _set_backend(self, backend: str | None = None, precision: str | None = None) -> None:
        if backend:
            self.settings.setValue("backend", backend)
        if precision:
            self.settings.setValue("precision", precision)
        if self.model_info is not None:
            self.worker.load(self.worker.weights, self.device_choice, backend=backend, precision=precision)

    def download_weights(self) -> None:
        dlg = QProgressDialog("Downloading the ImageNet weights (96 MB)…", "Cancel", 0, 0, self)
        dlg.setWindowTitle("Download ImageNet weights")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.setMinimumWidth(max(420, dlg.fontMetrics().horizontalAdvance(dlg.windowTitle()) + 160))  # title never cut
        dlg.canceled.connect(self._cancel_download)
        self._download_cancelled = False
        dlg.open()
        dlg.move(self.geometry().center() - dlg.rect().center())  # over the window, not in a corner of the screen
        self.download_dialog = dlg
        self.download_button.setEnabled(False)
        self.download_action.setEnabled(False)
        self.worker.download()

    def _cancel_download(self) -> None:
        self._download_cancelled = True
        self.worker.cancel_download()
        if self.download_dialog is not None:
            self.download_dialog.setLabelText("Cancelling…")

    def _on_download_progress(self, done: int, total: int) -> None:
        dlg = self.download_dialog
        if dlg is not None and total and not self._download_cancelled:
            dlg.setRange(0, 1000)
            dlg.setValue(int(1000 * done / total))
            dlg.setLabelText(f"Downloading the ImageNet weights… {done / 2**20:.1f} of {total / 2**20:.1f} MB")

    def _on_download_finished(self, ok: bool, message: str) -> None:
        dlg, self.download_dialog = self.download_dialog, None
        if dlg is not None:
            dlg.canceled.disconnect()
            dlg.reset()  # stops QProgressDialog's own timer, which would show it again
            dlg.hide()
            dlg.deleteLater()
        self.download_button.setEnabled(True)
        self.download_action.setEnabled(True)
        if ok:
            self.statusBar().showMessage(f"Weights saved and verified: {message}", 8000)
        elif self._download_cancelled:
            self.statusBar().showMessage(message, 8000)
        else:
            self._message("Download failed", message, QMessageBox.Icon.Warning)

    # ------------------------------------------------------------------ save / export
    def save_overlay(self) -> None:
        photo = self.current_photo()
        if photo is None or not self.view.has_photo():
            self.statusBar().showMessage("Select a classified photo first.", 4000)
            return
        name = self._overlay_name(photo)
        path, _ = QFileDialog.getSaveFileName(self, "Save Overlay", str(Path(self._last_folder()) / name), "PNG image (*.png)")
        if path:
            self.save_overlay_to(path if path.lower().endswith(".png") else path + ".png")

    def _shown_layer_and_label(self, photo: Photo) -> tuple[str, str, int]:
        res = photo.result
        if res is None or not res.ok or not res.top:
            return self.layer, "original", 0
        rank = min(self.selected_rank, len(res.top))
        return res.layer, res.top[rank - 1].label, rank

    def _overlay_name(self, photo: Photo) -> str:
        layer, label, _rank = self._shown_layer_and_label(photo)
        return overlay_name(photo, label, layer)

    def save_overlay_to(self, path: str) -> bool:
        """Write what the view shows, at the photo's display size, naming photo, class and layer in the PNG's text."""
        image = self.view.render_image()
        photo = self.current_photo()
        meta = {}
        if photo is not None:
            layer, _label, rank = self._shown_layer_and_label(photo)
            meta = overlay_metadata(photo, rank, layer)
        ok = image is not None and save_png(image, path, meta)
        self.statusBar().showMessage(f"Saved {path}" if ok else f"Could not save {path}", 5000)
        return ok

    def records(self) -> list[dict]:
        return self.photos.records()

    def export_dialog(self) -> None:
        if not self.records():
            self.statusBar().showMessage("Nothing to export yet.", 4000)
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export Results", str(Path(self._last_folder()) / "results.csv"),
                                                   ";;".join(EXPORT_FORMATS))
        if path:
            self.export_results(path, EXPORT_FORMATS.get(chosen))

    def export_results(self, path: str, fmt: str | None = None) -> None:
        """Write every answer; the format is the one chosen (else the file's extension), which is added if missing."""
        records = self.records()
        suffix = Path(path).suffix.lower().lstrip(".")
        fmt = fmt or (suffix if suffix in ("csv", "json") else "csv")
        if suffix in ("csv", "json") and suffix != fmt:
            path = path[: -len(suffix)] + fmt  # the default name's extension follows the format chosen
        elif suffix != fmt:
            path += f".{fmt}"
        try:
            write_records(path, records, fmt)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._message("Export failed", f"Could not write {path}: {reason}", QMessageBox.Icon.Warning)
            return
        self.statusBar().showMessage(f"Exported {len(records)} results to {path}", 5000)

    # ------------------------------------------------------------------ about / settings / close
    def about(self) -> None:
        import html

        info = self.model_info
        versions = info.versions if info else {}
        text = (
            f"<h3>resnext-gui {__version__}</h3>"
            "<p>ResNeXt-50 (32×4d) image classifier — Xie et al., <i>Aggregated Residual Transformations for Deep "
            "Neural Networks</i>, CVPR 2017 — with Grad-CAM heatmaps (Selvaraju et al., ICCV 2017).</p>"
            f"<p><b>Weights:</b> {html.escape(info.weights if info else 'none loaded')}<br>"
            f"<b>Device:</b> {html.escape(info.device if info else '—')}</p>"
            f"<p>torch {versions.get('torch', '—')} · torchvision {versions.get('torchvision', '—')} · "
            f"PySide6 {PYSIDE_VERSION} · Python {platform.python_version()}</p>"
        )
        QMessageBox.about(self, "About resnext-gui", text)

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        self.fit_to_screen()
        splitter = s.value("splitter")
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            self.splitter.restoreState(splitter)
        self.gallery_bar.set_sort(str(s.value("gallery_sort", "added")))
        try:
            self.opacity.setValue(int(s.value("opacity", 50)))
        except (TypeError, ValueError):
            pass
        cmap = str(s.value("colormap", "jet"))
        self.cmap.setCurrentText(cmap if cmap in COLORMAPS else "jet")
        self.view.set_colormap(self.cmap.currentText())
        mode = str(s.value("view_mode", "overlay"))
        self._set_mode(mode if mode in MODES else "overlay")
        layer = str(s.value("layer", "layer4"))
        idx = max(0, self.layer_box.findData(layer))
        self.layer_box.blockSignals(True)
        self.layer_box.setCurrentIndex(idx)
        self.layer_box.blockSignals(False)
        self.layer = self.layer_box.itemData(idx)
        for act in self.device_actions.actions():
            act.setChecked(act.data() == self.device_choice)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        s.setValue("splitter", self.splitter.saveState())
        s.setValue("gallery_sort", self.proxy.sort_key)
        s.setValue("opacity", self.opacity.value())
        s.setValue("colormap", self.cmap.currentText())
        s.setValue("view_mode", self.view.mode)
        s.setValue("layer", self.layer)
        s.setValue("device", self.device_choice)
        s.sync()

    def fit_to_screen(self) -> None:
        """Never larger than the screen's free area (a saved size from a larger screen, or a HiDPI scale)."""
        if self.isMaximized() or self.isFullScreen():
            return
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        free = screen.availableGeometry()
        frame = self.frameGeometry().size() - self.geometry().size()  # title bar and borders
        if frame.isNull() or frame.height() <= 0:  # not shown yet: leave room for a title bar
            frame = QSize(8, self.fontMetrics().height() * 2 + 8)
        width = min(self.width(), free.width() - frame.width())
        height = min(self.height(), free.height() - frame.height())
        if (width, height) != (self.width(), self.height()):
            self.resize(width, height)
        if not free.contains(self.frameGeometry()):
            self.move(max(free.left(), min(self.x(), free.right() - self.frameGeometry().width())),
                      max(free.top(), min(self.y(), free.bottom() - self.frameGeometry().height())))

    def closeEvent(self, event) -> None:  # noqa: N802
        self.save_settings()
        self.hide()  # gone at once for the user, even if the worker needs a moment to finish its photo
        self.scanner.stop()
        self.stopped_cleanly = self.worker.stop()
        event.accept()
