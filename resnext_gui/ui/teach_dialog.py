"""Teach New Classes: choose or drop class folders, watch the features being computed, judge the new model, use or save it."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QCloseEvent, QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core.train import MODEL_SUFFIX
from ..worker.jobs.teach import CountJob, SaveModelJob, TrainJob
from ..worker.results import Misclassified, TrainOutcome
from ..worker.runner import WorkerLike
from .drops import read_mime
from .folders import LastFolders
from .image_view import ImageView
from .messages import Messages
from .text import plain_tooltip, plural

if TYPE_CHECKING:
    from ..core.train import DataSet

MODEL_NAME = "my-classes"  # the name Save… suggests
MATRIX_MAX = 20  # classes up to which the result page shows the whole confusion matrix; more: a table of classes
LISTED = 20  # classes named in the result's text before "and N more"
WARNINGS_SHOWN = 8  # warnings shown in it (resnext-gui train prints them all)
LINE_MAX = 400  # characters of one warning shown (a warning can name a thousand classes)
RIGHT, WRONG = QColor(200, 235, 200), QColor(245, 205, 200)

INTRO = ("Teach the model your own classes. Put the photos of each class in a folder of its own, named after "
         "the class (e.g. photos/ripe, photos/unripe), then choose the folder that holds them — or drop the "
         "class folders here. The network itself stays as it is; only its last layer is learnt, in seconds "
         "after one pass over the photos. Everything stays on this computer.")


def _plain(text: str = "", wrap: bool = False) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(wrap)
    return label


class MistakeView(QDialog):
    """One misclassified photo with the heatmaps of its true class and its predicted class side by side."""

    def __init__(self, mistake: Misclassified, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{Path(mistake.path).name} — {mistake.true} taken for {mistake.predicted}")
        layout = QVBoxLayout(self)
        path = _plain(mistake.path)
        path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(path)
        row = QHBoxLayout()
        self.views = []
        for i, caption in enumerate((f"True class: {mistake.true}",
                                     f"Predicted: {mistake.predicted} ({mistake.prob:.0%})")):
            col = QVBoxLayout()
            col.addWidget(_plain(caption))
            view = ImageView()
            view.setMinimumSize(300, 260)
            if mistake.display is not None and mistake.maps is not None:
                view.set_photo(mistake.display, mistake.crop)
                view.set_map(mistake.maps[i])
            else:
                view.set_placeholder("This photo could not be read again")
            col.addWidget(view)
            self.views.append(view)
            row.addLayout(col)
        layout.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(760, 420)


def _cells(validation: dict[str, Any], labels: list[str]) -> dict[tuple[int, int], int]:
    from ..core.train import confusion_matrix

    return confusion_matrix(validation, labels)


class ConfusionModel(QAbstractTableModel):
    """The confusion matrix (rows: true class, columns: predicted) from its non-zero cells: nothing is made per
    cell, a cell's number is looked up when the view draws it."""

    def __init__(self, labels: list[str], cells: dict[tuple[int, int], int], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.labels, self.cells = labels, cells

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.labels)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.labels)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        n = self.cells.get((index.row(), index.column()), 0)
        if role == Qt.ItemDataRole.DisplayRole:
            return str(n)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.BackgroundRole and n:
            return RIGHT if index.row() == index.column() else WRONG
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.labels):
            return self.labels[section]
        return None


class ClassTableModel(QAbstractTableModel):
    """One row a class, the worst recognised first: its photos kept aside, recognised, recall, precision and the
    class it was most often taken for. Built in one pass over the classes and the confusions."""

    COLUMNS = ("Class", "Kept aside", "Recognised", "Recall", "Precision", "Most often taken for")

    def __init__(self, labels: list[str], validation: dict[str, Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        per_class = validation.get("per_class") or {}
        taken_for: dict[str, str] = {}
        for entry in validation.get("confused") or []:  # most frequent first: the first one per class is kept
            taken_for.setdefault(entry["true"], f"{entry['predicted']} ({entry['photos']})")
        rows = []
        for label in labels:
            v = per_class.get(label) or {}
            recall, precision = v.get("recall"), v.get("precision")
            rows.append((label, v.get("support", 0), v.get("correct", 0),
                         "—" if recall is None else f"{recall:.0%}", "—" if precision is None else f"{precision:.0%}",
                         taken_for.get(label, ""), 2.0 if recall is None else recall))
        rows.sort(key=lambda row: (row[6], row[0]))
        self.rows = [row[:6] for row in rows]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return str(row[index.column()])
        if role == Qt.ItemDataRole.TextAlignmentRole and 0 < index.column() < 5:
            return Qt.AlignmentFlag.AlignCenter
        if role == Qt.ItemDataRole.BackgroundRole and index.column() == 3 and row[1]:
            return RIGHT if row[2] == row[1] else WRONG
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section] if 0 <= section < len(self.COLUMNS) else None
        return str(section + 1)


def _listed(items: list[str], what: str) -> str:
    shown = ", ".join(items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more {what}" if len(items) > LISTED else "")


def _short(line: str) -> str:
    return line if len(line) <= LINE_MAX else line[:LINE_MAX - 1] + "…"


class TeachDialog(QDialog):
    """Collects class folders, runs the worker's TrainJob and shows the outcome. Never touches the model itself."""

    modelUsed = Signal(str)  # the taught model the user chose to use (the window loads it)
    modelSaved = Signal(str, str)  # the taught model's file in the cache, where the user saved it

    def __init__(self, worker: WorkerLike, messages: Messages, parent: QWidget | None = None,
                 folders: LastFolders | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.folders = folders  # where its dialogs open: the folder each used last (None: not remembered)
        self.setWindowTitle("Teach New Classes")
        self.setAcceptDrops(True)
        self.data: str | list[str] | None = None
        self.outcome: TrainOutcome | None = None
        self.saved: str | None = None  # where the user saved this outcome's model (Use then loads that file)
        self.used = False  # the window uses this outcome's model
        self.running = False
        self._count_job: CountJob | None = None  # the listing of the classes' photos now awaited
        self._train_job: TrainJob | None = None
        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_setup())
        self.pages.addWidget(self._build_result())
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages)
        self.resize(760, 560)

    # ---- setup page ----
    def _build_setup(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        v.addWidget(_plain(INTRO, wrap=True))
        row = QHBoxLayout()
        self.choose_button = QPushButton("Choose Folder…")
        self.choose_button.clicked.connect(self.choose_folder)
        row.addWidget(self.choose_button)
        self.source_label = _plain("No folder yet: choose one, or drop class folders on this window.")
        row.addWidget(self.source_label, 1)
        v.addLayout(row)
        self.class_list = QListWidget()
        self.class_list.setToolTip("The classes: one per folder")
        v.addWidget(self.class_list, 1)
        form = QFormLayout()
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.0, 0.5)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setValue(0.2)
        self.val_fraction.setToolTip("Share of each class kept aside to check the new model")
        form.addRow("Kept aside to check:", self.val_fraction)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Which photos are kept aside; the same seed gives the same split")
        form.addRow("Split seed:", self.seed)
        v.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setFormat("Computing features: %v of %m photos")
        self.progress.hide()
        v.addWidget(self.progress)
        self.status = _plain("", wrap=True)
        v.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.train_button = QPushButton("Teach")
        self.train_button.setDefault(True)
        self.train_button.setEnabled(False)
        self.train_button.clicked.connect(self.start_training)
        self.cancel_button = QPushButton("Close")
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        v.addLayout(buttons)
        return page

    def choose_folder(self) -> None:
        start = self.folders.folder("teach") if self.folders is not None else ""
        folder = QFileDialog.getExistingDirectory(self, "Folder with one subfolder per class", start)
        if folder:
            if self.folders is not None:
                self.folders.remember("teach", folder, is_folder=True)
            self.set_data(folder)

    def set_data(self, data: str | list[str]) -> None:
        """A folder of class folders, or a list of class folders. Their names now; each one's photos are counted
        on the worker's thread (listed by name, no photo is read) and shown when they come."""
        self.data = data
        self._count_job = None
        self.class_list.clear()
        if isinstance(data, str):
            self.source_label.setText(data)
            try:
                names = sorted(p.name for p in Path(data).iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError as exc:
                names = []
                self.status.setText(f"Cannot read {data}: {exc.strerror or exc}")
        else:
            self.source_label.setText(f"{plural(len(data), 'class folder')} dropped")
            names = [Path(p).name for p in data]
        for name in names:
            self.class_list.addItem(QListWidgetItem(name))
        self.train_button.setEnabled(not self.running and len(names) >= 2)
        if len(names) < 2:
            self.status.setText("Teaching needs at least two classes: one folder of photos each.")
        else:
            self.status.setText(f"{len(names)} classes (counting their photos…). "
                                "Teach to compute their features and fit the new model.")
            job = self._count_job = CountJob(data)
            self.worker.submit(job, partial(self._on_counted, job), partial(self._on_count_failed, job))

    def _on_counted(self, job: CountJob, data: DataSet) -> None:
        if job is not self._count_job:
            return  # other folders were chosen since
        self._count_job = None
        counts = data.counts()
        self.class_list.clear()
        for label, n in zip(data.labels, counts, strict=True):
            item = QListWidgetItem(f"{label} — {plural(n, 'photo')}")
            self.class_list.addItem(item)
        self.status.setText(f"{len(data.labels)} classes, {plural(sum(counts), 'photo')}. "
                            "Teach to compute their features and fit the new model.")

    def _on_count_failed(self, job: CountJob, message: str) -> None:
        if job is not self._count_job:
            return
        self._count_job = None
        self.train_button.setEnabled(False)  # training would refuse the same folders
        self.status.setText(f"Cannot teach these classes yet: {message}.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        dropped = read_mime(event.mimeData())
        folders = [p for p in dropped.paths if Path(p).is_dir()]
        if not folders:
            self.status.setText("Drop folders here: one folder per class, or the folder that holds them.")
            return
        event.acceptProposedAction()
        if len(folders) == 1:
            folder = Path(folders[0])
            has_subfolders = any(p.is_dir() for p in folder.iterdir() if not p.name.startswith("."))
            if has_subfolders:
                self.set_data(str(folder))
                return
        existing = self.data if isinstance(self.data, list) else []
        self.set_data(existing + [f for f in folders if f not in existing])

    def start_training(self) -> None:
        if self.data is None or self.running:
            return
        self.running = True
        self.train_button.setEnabled(False)
        self.choose_button.setEnabled(False)
        self.cancel_button.setText("Stop")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText("Finding the photos…")
        job = self._train_job = TrainJob(self.data, self.val_fraction.value(), self.seed.value())
        self.worker.submit(job, self._on_finished, self._on_failed, self._on_progress)

    def _cancel_training(self) -> None:
        if self.running and self._train_job is not None:
            self.worker.cancel(self._train_job)

    def _cancel_or_close(self) -> None:
        if self.running:
            self._cancel_training()
            self.status.setText("Stopping…")
        else:
            self.reject()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText("Computing each photo's features once (they are remembered for next time)…")

    def _on_failed(self, message: str) -> None:
        self._stopped()
        self.status.setText(message)

    def _stopped(self) -> None:
        self.running = False
        self.progress.hide()
        self.choose_button.setEnabled(True)
        self.cancel_button.setText("Close")
        self.train_button.setEnabled(self.class_list.count() >= 2)

    # ---- result page ----
    def _build_result(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        self.accuracy = _plain()
        font = self.accuracy.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.accuracy.setFont(font)
        v.addWidget(self.accuracy)
        self.details = _plain("", wrap=True)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        details = QScrollArea()  # many classes or warnings scroll here: the tables below keep their room
        details.setWidget(self.details)
        details.setWidgetResizable(True)
        details.setFrameShape(QFrame.Shape.NoFrame)
        details.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        details.setMaximumHeight(self.details.fontMetrics().lineSpacing() * 7 + 4)
        v.addWidget(details)
        self.table_title = _plain("Confusion matrix (rows: true class, columns: predicted class)")
        v.addWidget(self.table_title)
        self.confusion = QTableView()  # a model over the results: nothing is made per cell, whatever the classes
        self.confusion.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        v.addWidget(self.confusion, 2)
        v.addWidget(_plain("Photos it got wrong (double-click for the heatmaps of both classes)"))
        self.mistakes = QListWidget()
        self.mistakes.itemActivated.connect(self._open_mistake)
        v.addWidget(self.mistakes, 2)
        self.saved_label = _plain("", wrap=True)
        v.addWidget(self.saved_label)
        buttons = QHBoxLayout()
        again = QPushButton("Teach Again…")
        again.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        buttons.addWidget(again)
        buttons.addStretch(1)
        self.use_button = QPushButton("Use This Model")
        self.use_button.clicked.connect(self.use_model)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self.save_dialog)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        for b in (self.use_button, self.save_button, close):
            buttons.addWidget(b)
        v.addLayout(buttons)
        return page

    def _on_finished(self, outcome: TrainOutcome) -> None:
        self._stopped()
        self.outcome = outcome
        s = outcome.summary
        val = s.get("validation") or {}
        labels = outcome.labels
        if val.get("accuracy") is not None:
            self.accuracy.setText(f"Accuracy on {val['photos']} photos kept aside: {val['accuracy']:.0%}")
        else:
            self.accuracy.setText("No photos were kept aside, so there is no accuracy to report")
        counts = _listed([f"{k} {n}" for k, n in s["counts"].items()], "classes")
        lines = [f"{len(labels)} classes and their photos: {counts}.",
                 f"Features: {s['features']['computed']} computed, {s['features']['cached']} remembered from before."]
        if s["unreadable"]:
            lines.append(f"{len(s['unreadable'])} unreadable file(s) skipped.")
        warnings = s["warnings"]
        lines += [f"Warning: {_short(w)}" for w in warnings[:WARNINGS_SHOWN]]
        if len(warnings) > WARNINGS_SHOWN:
            lines.append(f"… and {len(warnings) - WARNINGS_SHOWN} more warnings (resnext-gui train prints them all).")
        self.details.setText("\n".join(lines))
        header = self.confusion.horizontalHeader()
        old = self.confusion.model()
        if len(labels) <= MATRIX_MAX:
            self.table_title.setText("Confusion matrix (rows: true class, columns: predicted class)")
            self.confusion.setModel(ConfusionModel(labels, _cells(val, labels), self.confusion))
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        else:  # a matrix of hundreds of columns can't be read: each class's figures instead, worst first
            self.table_title.setText(f"The {len(labels)} classes, the least often recognised first")
            self.confusion.setModel(ClassTableModel(labels, val, self.confusion))
            header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
            header.setStretchLastSection(True)
        if old is not None:
            old.deleteLater()
        self.mistakes.clear()
        for m in outcome.mistakes:
            entry = QListWidgetItem(f"{Path(m.path).name}: {m.true} taken for {m.predicted} ({m.prob:.0%})")
            entry.setToolTip(plain_tooltip(m.path))
            entry.setData(Qt.ItemDataRole.UserRole, m)
            self.mistakes.addItem(entry)
        if not outcome.mistakes:
            self.mistakes.addItem(QListWidgetItem("None: every photo kept aside was recognised"))
        self.saved, self.used = None, False
        self.saved_label.setText("")
        self.pages.setCurrentIndex(1)

    def _open_mistake(self, item: QListWidgetItem) -> MistakeView | None:
        mistake = item.data(Qt.ItemDataRole.UserRole)
        if not isinstance(mistake, Misclassified):
            return None
        view = MistakeView(mistake, self)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.show()
        return view

    def use_model(self) -> None:
        """The window loads the new model: the file it was saved as, if it was (so the window names that file,
        and opens it at the next start), else its copy in the cache."""
        if self.outcome is None:
            return
        self.used = True
        if self.saved is not None and Path(self.saved).is_file():
            self.saved_label.setText(f"The window now uses the new model, saved as {self.saved}.")
            self.modelUsed.emit(self.saved)
            return
        self.saved_label.setText("The window now uses the new model. Save it to keep it for later.")
        self.modelUsed.emit(self.outcome.model_path)

    def save_dialog(self) -> None:
        if self.outcome is None:
            return
        name = MODEL_NAME + MODEL_SUFFIX
        suggested = self.folders.in_folder("weights", name) if self.folders is not None else name
        path, _ = QFileDialog.getSaveFileName(self, "Save Model", suggested, f"Model (*{MODEL_SUFFIX})")
        if path:
            if self.folders is not None:
                self.folders.remember("weights", path)
            self.save_to(path)

    def save_to(self, path: str) -> None:
        """Save the taught model as ``path``; a name without .safetensors gets it added (a .pth or .pt name is
        refused with the name to use: the file is in the safetensors format, whatever it would be called)."""
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (MODEL_SUFFIX, ".pth", ".pt"):
            path += MODEL_SUFFIX
        if self.outcome is not None:
            self.saved_label.setText(f"Saving {path}…")
            job = SaveModelJob(self.outcome.model_path, path)
            self.worker.submit(job, partial(self._on_saved, job), self.saved_label.setText)

    def _on_saved(self, job: SaveModelJob, path: str) -> None:
        if self.outcome is not None and job.source == self.outcome.model_path:
            self.saved = path
        in_use = " The window uses it now." if self.used else ""
        self.saved_label.setText(f"Saved {path}: open it later with File → Open Weights… or --weights.{in_use}")
        self.modelSaved.emit(job.source, path)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._cancel_training()
        super().closeEvent(event)

    def reject(self) -> None:
        self._cancel_training()
        super().reject()
