"""The main window: drop zone, gallery of results, photo + heatmap view, top-5 panel, menus and status bar."""

from __future__ import annotations

import os
import platform
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PySide6 import __version__ as PYSIDE_VERSION
from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QGuiApplication, QIcon, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..core.records import write_records
from ..core.colormap import COLORMAPS
from ..core.paths import expand_paths
from ..core.preprocess import source_name
from ..worker import ClassifyJob, DisplayJob, DownloadJob, ItemResult, LoadJob, QImageJob, WorkerBridge
from .image_view import ImageView
from .top5 import Top5Panel

GALLERY_CELL = QSize(132, 144)  # a 96-pixel thumbnail and two lines of text
DISPLAY_CACHE = 16  # full display copies kept; older photos keep only their thumbnail, map and labels
IMAGE_MIME = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif", "image/tiff")
LAYERS = [("layer4", "Last stage (7×7, default)"), ("layer3", "Stage before (14×14, finer)")]


@dataclass
class Item:
    """One photo in the gallery."""

    item_id: int
    source: object  # path str, image bytes, or None for data still to be encoded by the worker
    name: str
    status: str = "queued"  # queued | done | error | stopped
    result: ItemResult | None = None
    widget: QListWidgetItem | None = None


def _badge(text: str, color: QColor, side: int = 96) -> QIcon:
    """A gallery placeholder icon, drawn at the screen's pixel ratio so it stays crisp on HiDPI screens."""
    screen = QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen else 1.0
    pix = QPixmap(int(side * ratio), int(side * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(color)
    p.setPen(Qt.PenStyle.NoPen)
    p.drawRoundedRect(8, 8, side - 16, side - 16, 12, 12)
    p.setPen(QColor("white"))
    font = p.font()
    font.setPixelSize(side // 3)
    font.setBold(True)
    p.setFont(font)
    p.drawText(0, 0, side, side, Qt.AlignmentFlag.AlignCenter, text)
    p.end()
    return QIcon(pix)


def _percent(prob: float) -> str:
    return f"{prob:.0%}" if prob >= 0.095 else f"{prob:.1%}"


class MainWindow(QMainWindow):
    shown = Signal()
    # Emitted on the GUI thread (the worker's own signals arrive from another thread):
    modelStateChanged = Signal(str)  # "ready" | "missing" | "failed"
    itemUpdated = Signal(int)  # an item got its result, a recomputed result, or its display image

    def __init__(self, weights: str | None = None, device: str | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("resnext-gui", "resnext-gui")
        self.setWindowTitle("ResNeXt Classifier")
        self.setAcceptDrops(True)
        self.items: dict[int, Item] = {}
        self.displays: OrderedDict[int, QImage] = OrderedDict()
        self.model_info: dict | None = None
        self.model_state = "loading"  # loading | ready | missing
        self.layer = "layer4"
        self.batch_total = self.batch_done = 0
        self.selected_rank = 1
        self.last_message: QMessageBox | None = None
        self._shown_once = False
        device = device or str(self.settings.value("device", "auto"))
        screen = QGuiApplication.primaryScreen()
        self.bridge = WorkerBridge(weights, device, self, pixel_ratio=screen.devicePixelRatio() if screen else 1.0)
        self.device_choice = device
        self._build()
        self._connect_worker()
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
        self.gallery = QListWidget(self)
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setFlow(QListWidget.Flow.LeftToRight)
        self.gallery.setWrapping(True)
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setIconSize(QSize(96, 96))
        self.gallery.setGridSize(GALLERY_CELL + QSize(4, 4))
        self.gallery.setWordWrap(False)
        self.gallery.setUniformItemSizes(True)  # every entry has an icon and two lines of text
        self.gallery.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.gallery.setAcceptDrops(False)
        self.gallery.setDragEnabled(False)
        self.gallery.setMinimumWidth(140)
        split.addWidget(self.gallery)

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
        self.mode_group = QButtonGroup(self)
        for i, (key, text) in enumerate((("original", "Original"), ("overlay", "Overlay"), ("heatmap", "Heatmap"))):
            btn = QPushButton(text)
            btn.setCheckable(True)
            btn.setProperty("mode", key)
            self.mode_group.addButton(btn, i)
            modes.addWidget(btn)
        s.addLayout(modes)
        s.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.setAccessibleName("Heatmap opacity")
        s.addWidget(self.opacity)
        s.addWidget(QLabel("Colour map"))
        self.cmap = QComboBox()
        self.cmap.addItems(list(COLORMAPS))
        s.addWidget(self.cmap)
        s.addWidget(QLabel("Grad-CAM layer"))
        self.layer_box = QComboBox()
        for key, text in LAYERS:
            self.layer_box.addItem(text, key)
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
        split.addWidget(side)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([300, 700, 260])
        self.splitter = split
        outer.addWidget(split, 1)
        self.setCentralWidget(central)

        bar = self.statusBar()
        self.device_label = QLabel("Loading model…")
        self.weights_label = QLabel("")
        self.time_label = QLabel("")
        self.summary_label = QLabel("")
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
        self.download_button.clicked.connect(self.download_weights)
        self.open_weights_button.clicked.connect(self.choose_weights)
        self.stop_button.clicked.connect(self.stop)
        self.clear_button.clicked.connect(self.clear)
        self.gallery.currentItemChanged.connect(self._on_current_changed)
        self.top5.classChosen.connect(self._on_class_chosen)
        self.mode_group.idClicked.connect(lambda i: self._set_mode(("original", "overlay", "heatmap")[i]))
        self.opacity.valueChanged.connect(lambda v: self.view.set_opacity(v / 100))
        self.cmap.currentTextChanged.connect(self.view.set_colormap)
        self.layer_box.currentIndexChanged.connect(self._on_layer_changed)

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
        self.download_action = self._action(f, "&Download ImageNet Weights…", self.download_weights)
        f.addSeparator()
        self.save_action = self._action(f, "&Save Overlay as PNG…", self.save_overlay, QKeySequence.StandardKey.Save)
        self._action(f, "&Export Results…", self.export_dialog, "Ctrl+E", tip="All processed photos as CSV or JSON")
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        e = mb.addMenu("&Edit")
        self._action(e, "S&top", self.stop, "Esc")
        self._action(e, "&Clear All", self.clear, "Ctrl+Shift+Backspace")

        v = mb.addMenu("&View")
        self.mode_actions = QActionGroup(self)
        for key, text, sc in (("original", "&Original", "Ctrl+1"), ("overlay", "O&verlay", "Ctrl+2"), ("heatmap", "&Heatmap Only", "Ctrl+3")):
            act = self._action(v, text, lambda _=False, k=key: self._set_mode(k), sc)
            act.setCheckable(True)
            act.setData(key)
            self.mode_actions.addAction(act)
        v.addSeparator()
        for rank in range(1, 6):
            self._action(v, f"Heatmap of Class {rank}", lambda _=False, r=rank: self.top5.select(r), str(rank))

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

        h = mb.addMenu("&Help")
        self._action(h, "&About resnext-gui", self.about)

    # ------------------------------------------------------------------ worker
    def _connect_worker(self) -> None:
        eng = self.bridge.engine
        eng.loading.connect(self._on_loading)
        eng.modelReady.connect(self._on_model_ready)
        eng.modelMissing.connect(self._on_model_missing)
        eng.modelFailed.connect(self._on_model_failed)
        eng.result.connect(self._on_result)
        eng.display.connect(self._on_display)
        eng.downloadProgress.connect(self._on_download_progress)
        eng.downloadDone.connect(self._on_download_done)

    def start(self) -> None:
        """Start the worker (it imports torch and loads the model while the window is already up)."""
        self.bridge.start()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.shown.emit()

    def _on_loading(self, text: str) -> None:
        self.model_state = "loading" if self.model_info is None else self.model_state
        self.device_label.setText(text)

    def _on_model_ready(self, info: dict) -> None:
        self.model_info = info
        self.model_state = "ready"
        self.banner.hide()
        self.device_label.setText(info["device"])
        self.weights_label.setText(f"Weights: {info['weights_short']}")
        self.weights_label.setToolTip(info["weights"])
        self.cuda_action.setEnabled(info["cuda_available"])
        self.cuda_action.setToolTip("" if info["cuda_available"] else "No CUDA GPU found on this computer")
        if not self.items:
            self.view.set_placeholder("Drop photos or folders here\n(or File → Open, Ctrl+O; paste with Ctrl+V)")
        self._update_waiting_text("Classifying…")
        self.modelStateChanged.emit("ready")

    def _on_model_missing(self, message: str) -> None:
        self.model_state = "missing"
        self.device_label.setText("No model weights")
        self.banner_text.setText(
            "<b>No model weights found.</b> This app never guesses with an untrained network. "
            "Download the official ImageNet weights (96 MB, checked and stored where torchvision keeps them), "
            "or open a ResNeXt-50 checkpoint you have. Photos you drop now will wait."
        )
        self.banner_text.setToolTip(message)
        self.banner.show()
        self.view.set_placeholder("Waiting for model weights — see the bar above.")
        self._update_waiting_text("Waiting for weights")
        self.modelStateChanged.emit("missing")

    def _on_model_failed(self, message: str) -> None:
        still = " The previous model stays in use." if self.model_info else ""
        self._message("Cannot use these weights", message + still, QMessageBox.Icon.Warning)
        self.modelStateChanged.emit("failed")

    def _message(self, title: str, text: str, icon=QMessageBox.Icon.Information) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.last_message = box

    # ------------------------------------------------------------------ adding photos
    def add_paths(self, paths: list[str]) -> None:
        files = expand_paths(paths)
        if paths and not files:
            self.statusBar().showMessage("No images found in what was dropped.", 5000)
        self._enqueue([(str(p), str(p)) for p in files])

    def _enqueue(self, sources: list[tuple[object, str]]) -> None:
        """sources: (path | bytes | QImage, display name)."""
        if not sources:
            return
        first = None
        gen = self.bridge.generation
        for source, name in sources:
            item = Item(self.bridge.new_id(), None if isinstance(source, QImage) else source, name)
            item.widget = self._gallery_entry(_badge("…", QColor(130, 130, 130)), f"waiting\n{self._short(name, 18)}")
            item.widget.setData(Qt.ItemDataRole.UserRole, item.item_id)
            item.widget.setToolTip(f"{name}\n{self._waiting_word()}")
            self.gallery.addItem(item.widget)
            self.items[item.item_id] = item
            if isinstance(source, QImage):
                self.bridge.submit(QImageJob(item.item_id, source.copy(), self.layer, gen))
            else:
                self.bridge.submit(ClassifyJob(item.item_id, source, self.layer, gen))
            first = first or item
            self.batch_total += 1
        self._update_progress()
        if self.gallery.currentItem() is None or self._current_item() is None or self._current_item().status != "done":
            self.gallery.setCurrentItem(first.widget)
        self.gallery.setFocus()

    def _add_error(self, name: str, message: str) -> None:
        item = Item(self.bridge.new_id(), None, name, status="error")
        item.result = ItemResult(item.item_id, False, name, error=message, record={"path": name, "ok": False, "error": message})
        item.widget = self._gallery_entry(_badge("!", QColor(200, 50, 50)), f"not classified\n{self._short(name, 18)}")
        item.widget.setData(Qt.ItemDataRole.UserRole, item.item_id)
        item.widget.setToolTip(f"{name}\n{message}")
        self.gallery.addItem(item.widget)
        self.items[item.item_id] = item
        self.gallery.setCurrentItem(item.widget)
        self._update_summary()

    def _gallery_entry(self, icon: QIcon, text: str) -> QListWidgetItem:
        entry = QListWidgetItem(icon, text)
        entry.setSizeHint(GALLERY_CELL)  # every entry the same size, whatever its first text was
        entry.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        return entry

    def add_mime(self, mime) -> bool:
        """Files, folders, image data from other programs, or pasted paths. Returns True if anything came in."""
        paths, taken = [], False
        if mime.hasUrls():
            for url in mime.urls():
                if url.isLocalFile():
                    paths.append(url.toLocalFile())
                elif url.scheme() in ("http", "https", "ftp"):
                    self._add_error(url.toString(), f"This is an offline app and won't download {url.toString()}: save the image first, then drop the file.")
                    taken = True
        if paths:
            self.add_paths(paths)
            return True
        if taken:
            return True
        for fmt in IMAGE_MIME:
            if mime.hasFormat(fmt):
                data = bytes(mime.data(fmt))
                if data:
                    self._enqueue([(data, source_name(data))])
                    return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self._enqueue([(image, "pasted image")])
                return True
        if mime.hasText():
            lines = [ln.strip() for ln in mime.text().splitlines() if ln.strip()]
            candidates = [ln[7:] if ln.startswith("file://") else ln for ln in lines]
            if candidates and all(os.path.exists(c) for c in candidates):
                self.add_paths(candidates)
                return True
            urls = [ln for ln in lines if ln.startswith(("http://", "https://"))]
            for u in urls:
                self._add_error(u, f"This is an offline app and won't download {u}: save the image first, then drop the file.")
            return bool(urls)
        return False

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage() or any(mime.hasFormat(f) for f in IMAGE_MIME):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        if self.add_mime(event.mimeData()):
            event.acceptProposedAction()

    def paste(self) -> None:
        if not self.add_mime(QGuiApplication.clipboard().mimeData()):
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

    # ------------------------------------------------------------------ results
    def _on_result(self, res: ItemResult) -> None:
        item = self.items.get(res.item_id)
        if item is None:
            return  # cleared meanwhile
        recompute = item.status == "done"
        if res.source is not None:
            item.source = res.source
        if res.display is not None:
            self._cache_display(res.item_id, res.display)
            res.display = None
        if not recompute or res.ok:
            if res.thumb is None and item.result is not None:
                res.thumb = item.result.thumb
            item.result = res
        item.status = "done" if res.ok else "error"
        if res.ok:
            label, prob = res.top[0][2], res.top[0][3]
            item.widget.setIcon(QIcon(QPixmap.fromImage(res.thumb)))
            item.widget.setText(f"{self._short(label, 12)} {_percent(prob)}\n{self._short(item.name, 18)}")
            item.widget.setToolTip(f"{item.name}\n{label} — {prob:.1%}" + (f"\n{res.note}" if res.note else ""))
            self.time_label.setText(f"{res.ms:.0f} ms" + (f" · {res.note}" if res.note else ""))
        else:
            item.widget.setIcon(_badge("!", QColor(200, 50, 50)))
            item.widget.setText(f"not classified\n{self._short(item.name, 18)}")
            item.widget.setToolTip(f"{item.name}\n{res.error}")
        if not recompute:
            self.batch_done += 1
            self._update_progress()
        if self._current_item() is item:
            self._show_item(item)
        self.itemUpdated.emit(item.item_id)

    def _on_display(self, item_id: int, image: QImage) -> None:
        if item_id in self.items:
            self._cache_display(item_id, image)
            if self._current_item() is self.items[item_id]:
                self._show_item(self.items[item_id])
            self.itemUpdated.emit(item_id)

    def _cache_display(self, item_id: int, image: QImage) -> None:
        self.displays[item_id] = image
        self.displays.move_to_end(item_id)
        while len(self.displays) > DISPLAY_CACHE:
            self.displays.popitem(last=False)

    def _update_summary(self) -> None:
        counts = {"done": 0, "error": 0, "queued": 0, "stopped": 0}
        for item in self.items.values():
            counts[item.status] += 1
        parts = [f"{len(self.items)} photo{'s' if len(self.items) != 1 else ''}"] if self.items else []
        if counts["error"]:
            parts.append(f"{counts['error']} not classified")
        if counts["queued"]:
            parts.append(f"{counts['queued']} waiting")
        if counts["stopped"]:
            parts.append(f"{counts['stopped']} stopped")
        self.summary_label.setText(" · ".join(parts))

    def _update_progress(self) -> None:
        self._update_summary()
        pending = self.batch_total - self.batch_done
        if self.batch_total > 1 and pending > 0:
            self.progress.setRange(0, self.batch_total)
            self.progress.setValue(self.batch_done)
            self.progress.setFormat("%v / %m")
            self.progress.show()
        else:
            self.progress.hide()
        if pending <= 0:
            self.batch_total = self.batch_done = 0

    def _waiting_word(self) -> str:
        return {"missing": "Waiting for weights", "loading": "Waiting for the model"}.get(self.model_state, "Classifying…")

    def _update_waiting_text(self, text: str) -> None:
        for item in self.items.values():
            if item.status == "queued":
                item.widget.setToolTip(f"{item.name}\n{text}")
        cur = self._current_item()
        if cur is not None and cur.status == "queued":
            self._show_item(cur)

    # ------------------------------------------------------------------ selection and view
    def _current_item(self) -> Item | None:
        w = self.gallery.currentItem()
        return self.items.get(w.data(Qt.ItemDataRole.UserRole)) if w is not None else None

    def _on_current_changed(self, current, _previous) -> None:
        item = self._current_item()
        if item is not None:
            self.selected_rank = 1
            self._show_item(item)

    def _show_item(self, item: Item) -> None:
        res = item.result
        if item.status == "queued":
            self.view.set_photo(None)
            self.view.set_map(None)
            self.view.set_placeholder(f"{self._waiting_word()}\n{item.name}")
            self.top5.set_top([], message="")
            return
        if item.status == "stopped":
            self.view.set_photo(None)
            self.view.set_placeholder(f"Stopped before it was classified\n{item.name}")
            self.top5.set_top([])
            return
        if not res.ok:
            self.view.set_photo(None)
            self.view.set_map(None)
            self.view.set_placeholder(f"Could not classify this file\n\n{res.error}")
            self.top5.set_top([], message=res.error)
            return
        display = self.displays.get(item.item_id)
        if display is None:
            self.view.set_photo(None)
            self.view.set_placeholder(f"Loading {item.name}…")
            if item.source is not None:
                self.bridge.submit(DisplayJob(item.item_id, item.source))
        else:
            self.displays.move_to_end(item.item_id)
            self.view.set_photo(display, res.crop)
        rank = min(self.selected_rank, len(res.top))
        self.view.set_map(res.maps[rank - 1])
        self.top5.set_top(res.top, rank, message=res.note or "")
        layer_text = dict(LAYERS).get(res.layer, res.layer)
        self.top5.title.setText(f"Top {len(res.top)} · heatmap: {layer_text.split(' (')[0].lower()}")

    def _on_class_chosen(self, rank: int) -> None:
        item = self._current_item()
        if item is None or item.result is None or not item.result.ok:
            return
        self.selected_rank = rank
        self.view.set_map(item.result.maps[rank - 1])

    def current_map(self):
        """The 8-bit heatmap the view shows now (for tests and "Save")."""
        return self.view._map

    def _set_mode(self, mode: str) -> None:
        self.view.set_mode(mode)
        idx = ("original", "overlay", "heatmap").index(mode)
        self.mode_group.button(idx).setChecked(True)
        for act in self.mode_actions.actions():
            act.setChecked(act.data() == mode)
        self.opacity.setEnabled(mode == "overlay")

    def _on_layer_changed(self, index: int) -> None:
        self.layer = self.layer_box.itemData(index)
        self.settings.setValue("layer", self.layer)
        item = self._current_item()
        if item is not None and item.status == "done" and item.source is not None:
            self.bridge.submit(ClassifyJob(item.item_id, item.source, self.layer, self.bridge.generation))

    @staticmethod
    def _short(text: str, n: int = 16) -> str:
        text = os.path.basename(text) or text
        return text if len(text) <= n else text[: n - 1] + "…"

    # ------------------------------------------------------------------ stop / clear
    def stop(self) -> None:
        self.bridge.cancel_pending()
        stopped = 0
        for item in self.items.values():
            if item.status == "queued":
                item.status = "stopped"
                item.widget.setIcon(_badge("■", QColor(120, 120, 120)))
                item.widget.setText(f"stopped\n{self._short(item.name, 18)}")
                item.widget.setToolTip(f"{item.name}\nStopped before it was classified")
                stopped += 1
        self.batch_total = self.batch_done = 0
        self._update_progress()
        if stopped:
            self.statusBar().showMessage(f"Stopped: {stopped} photo(s) not classified.", 5000)
        cur = self._current_item()
        if cur is not None:
            self._show_item(cur)

    def clear(self) -> None:
        self.bridge.cancel_pending()
        self.gallery.clear()
        self.items.clear()
        self.displays.clear()
        self.batch_total = self.batch_done = 0
        self._update_progress()
        self.view.set_photo(None)
        self.view.set_map(None)
        self.view.set_placeholder("Drop photos or folders here")
        self.top5.set_top([])
        self.time_label.setText("")

    # ------------------------------------------------------------------ weights and device
    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open Weights", self._last_folder(), "Checkpoints (*.pth *.pt *.safetensors);;All files (*)")
        if path:
            self.load_weights(path)

    def load_weights(self, path: str) -> None:
        self.device_label.setText("Loading model…")
        self.bridge.submit(LoadJob(path, self.device_choice, explicit=True))

    def set_device(self, device: str) -> None:
        self.device_choice = device
        self.settings.setValue("device", device)
        for act in self.device_actions.actions():
            act.setChecked(act.data() == device)
        if self.model_info is not None:
            weights = self.bridge.engine.weights
            self.bridge.submit(LoadJob(weights, device, explicit=True))

    def download_weights(self) -> None:
        dlg = QProgressDialog("Downloading the ImageNet weights (96 MB)…", "Cancel", 0, 0, self)
        dlg.setWindowTitle("Download weights")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(self.bridge.cancel_download)
        dlg.show()
        self.download_dialog = dlg
        self.download_button.setEnabled(False)
        self.download_action.setEnabled(False)
        self.bridge.submit(DownloadJob())

    def _on_download_progress(self, done: int, total: int) -> None:
        dlg = getattr(self, "download_dialog", None)
        if dlg is None:
            return
        if total:
            dlg.setRange(0, 1000)
            dlg.setValue(int(1000 * done / total))
            dlg.setLabelText(f"Downloading the ImageNet weights… {done / 2**20:.1f} of {total / 2**20:.1f} MB")

    def _on_download_done(self, ok: bool, message: str) -> None:
        dlg = getattr(self, "download_dialog", None)
        if dlg is not None:
            dlg.canceled.disconnect()
            dlg.close()
            dlg.deleteLater()
            self.download_dialog = None
        self.download_button.setEnabled(True)
        self.download_action.setEnabled(True)
        if ok:
            self.statusBar().showMessage(f"Weights saved and verified: {message}", 8000)
        else:
            self._message("Download failed", message, QMessageBox.Icon.Warning)

    # ------------------------------------------------------------------ save / export
    def save_overlay(self) -> None:
        item = self._current_item()
        if item is None or not self.view.has_photo():
            self.statusBar().showMessage("Select a classified photo first.", 4000)
            return
        stem = Path(item.name).stem if item.name != "pasted image" else "pasted"
        path, _ = QFileDialog.getSaveFileName(self, "Save Overlay", str(Path(self._last_folder()) / f"{stem}.cam.png"), "PNG image (*.png)")
        if path:
            self.save_overlay_to(path)

    def save_overlay_to(self, path: str) -> bool:
        image = self.view.render_image()
        ok = image is not None and image.save(path, "PNG")
        self.statusBar().showMessage(f"Saved {path}" if ok else f"Could not save {path}", 5000)
        return ok

    def records(self) -> list[dict]:
        return [it.result.record for it in self.items.values() if it.result is not None and it.result.record]

    def export_dialog(self) -> None:
        if not self.records():
            self.statusBar().showMessage("Nothing to export yet.", 4000)
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export Results", str(Path(self._last_folder()) / "results.csv"), "CSV (*.csv);;JSON (*.json)")
        if path:
            self.export_results(path)

    def export_results(self, path: str) -> None:
        records = self.records()
        fmt = "json" if path.lower().endswith(".json") else "csv"
        try:
            write_records(path, records, fmt)
        except OSError as exc:
            self._message("Export failed", f"Could not write {path}: {exc.strerror or exc}", QMessageBox.Icon.Warning)
            return
        self.statusBar().showMessage(f"Exported {len(records)} results to {path}", 5000)

    # ------------------------------------------------------------------ about / settings / close
    def about(self) -> None:
        info = self.model_info or {}
        versions = info.get("versions", {})
        text = (
            f"<h3>resnext-gui {__version__}</h3>"
            "<p>ResNeXt-50 (32×4d) image classifier — Xie et al., <i>Aggregated Residual Transformations for Deep "
            "Neural Networks</i>, CVPR 2017 — with Grad-CAM heatmaps (Selvaraju et al., ICCV 2017).</p>"
            f"<p><b>Weights:</b> {info.get('weights', 'none loaded')}<br>"
            f"<b>Device:</b> {info.get('device', '—')}</p>"
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
        try:
            self.opacity.setValue(int(s.value("opacity", 50)))
        except (TypeError, ValueError):
            pass
        cmap = str(s.value("colormap", "jet"))
        self.cmap.setCurrentText(cmap if cmap in COLORMAPS else "jet")
        self.view.set_colormap(self.cmap.currentText())
        mode = str(s.value("view_mode", "overlay"))
        self._set_mode(mode if mode in ("original", "overlay", "heatmap") else "overlay")
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
        s.setValue("opacity", self.opacity.value())
        s.setValue("colormap", self.cmap.currentText())
        s.setValue("view_mode", self.view.mode)
        s.setValue("layer", self.layer)
        s.setValue("device", self.device_choice)
        s.sync()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.save_settings()
        self.hide()  # gone at once for the user, even if the worker needs a moment to finish its photo
        self.stopped_cleanly = self.bridge.stop()
        event.accept()
