"""Find Duplicates…: the gallery's groups of near-duplicates side by side, the keeper marked "Keep" and the others
checked to go, at a threshold the user sets; Move to Trash (the desktop's trash, restorable from the file manager)
and its Undo. The worker compares and moves the files; the window never waits."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.similar_photos import DuplicateGroup
from ..core.similarity import DEFAULT_THRESHOLD
from ..worker.images import THUMB_SIDE
from ..worker.jobs.similar import FindDuplicatesJob, TrashJob, UntrashJob
from ..worker.queue import CANCELLED
from ..worker.results import DuplicatesFound, Trashed, Untrashed
from ..worker.runner import WorkerLike
from .controller import BatchController, PutBack, Undoable
from .gallery import GalleryModel, Photo
from .library_ui import human_size
from .messages import Messages
from .similar_ui import Comparing, figure_text, file_paths, scale_words
from .text import plural

MAX_GROUPS = 200  # groups shown at once, the surest first (the summary says how many more there are)
COLUMNS = 6  # copies side by side in a group's row (more wrap to the next)
SLIDER_MIN, SLIDER_MAX = 30, 100  # the threshold control's range, in hundredths
RECOMPUTE_AFTER_MS = 250  # the threshold is applied once the user pauses on it
TILE_WIDTH = 150

THRESHOLD_MEANING = {
    "exact copy": "exact copies only: the same picture, recompressed, resized or brightened",
    "same shot": "the same shot: a photo's copies and edited versions (a crop, a caption, the next shot of a burst)",
    "same scene": "the same scene: crops and shots further apart; unrelated photos begin to reach",
    "loosely alike": "loosely alike: unrelated photos will be grouped too",
}
# a tile's frame and badge, by what will become of its photo
TILE_STATES = {
    "keep": ("Keep", "#2e7d32"),
    "trash": ("To Trash", "#c62828"),
    "moved": ("In the Trash", "#757575"),
    "failed": ("Not moved", "#c62828"),
}


def threshold_text(threshold: float) -> str:
    """ "0.60 — the same shot: a photo's copies and edited versions (…)" """
    return f"{threshold:.2f} — {THRESHOLD_MEANING[scale_words(threshold)]}"


def megapixels(pixels: int) -> str:
    """2,000,000 -> "2.0 MP", 40,000 -> "0.04 MP"."""
    if not pixels:
        return "size unknown"
    mp = pixels / 1e6
    return f"{mp:.0f} MP" if mp >= 10 else f"{mp:.1f} MP" if mp >= 0.995 else f"{mp:.2f} MP"


def _base(path: str) -> str:
    return os.path.basename(path) or path


class CopyTile(QFrame):
    """One photo of a group: its thumbnail, name, size, and whether it goes (checked) or is kept."""

    toggled = Signal()

    def __init__(self, path: str, thumb: QPixmap | None, keeper: bool, figure: float, pixels: int, size: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path, self.keeper = path, keeper
        self.setObjectName("tile")
        self.setFixedWidth(TILE_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(3)
        self.badge = QLabel(self)
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture = QLabel(self)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setFixedSize(TILE_WIDTH - 14, THUMB_SIDE + 4)
        if thumb is not None:
            self.picture.setPixmap(thumb)
        else:
            self.picture.setText("no thumbnail")
        self.name = QLabel(self)
        self.name.setTextFormat(Qt.TextFormat.PlainText)
        self.name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        width = TILE_WIDTH - 14
        self.name.setText(self.name.fontMetrics().elidedText(_base(path), Qt.TextElideMode.ElideMiddle, width))
        why = "suggested keeper: the most pixels, then the newest file" if keeper else \
            f"{figure_text(figure)} similar to the keeper ({scale_words(figure)})"
        self.setToolTip(f"{path}\n{megapixels(pixels)} · {human_size(size)}\n{why}")
        self.facts = QLabel(f"{megapixels(pixels)} · {human_size(size)}", self)
        self.likeness = QLabel("suggested keeper" if keeper else f"{figure_text(figure)} to the keeper", self)
        for label in (self.facts, self.likeness):
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.check = QCheckBox("Move to Trash", self)
        self.check.setChecked(not keeper)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setStyleSheet("color: #c62828;")
        self.note.hide()
        for w in (self.badge, self.picture, self.name, self.facts, self.likeness, self.check, self.note):
            layout.addWidget(w)
        self.check.toggled.connect(self._on_toggled)
        self.state = ""
        self._set_state("trash" if not keeper else "keep")

    @property
    def checked(self) -> bool:
        return self.check.isEnabled() and self.check.isChecked()

    def _on_toggled(self, checked: bool) -> None:
        self._set_state("trash" if checked else "keep")
        self.toggled.emit()

    def _set_state(self, state: str) -> None:
        self.state = state
        text, colour = TILE_STATES[state]
        self.badge.setText(text)
        self.badge.setStyleSheet(f"background: {colour}; color: white; font-weight: bold; border-radius: 4px;"
                                 " padding: 2px 6px;")
        style = "dashed" if state in ("trash", "moved") else "solid"
        self.setStyleSheet(f"QFrame#tile {{ border: 2px {style} {colour}; border-radius: 6px; }}")

    def moved(self) -> None:
        """Its file is in the trash now."""
        self.check.setChecked(True)
        self.check.setEnabled(False)
        self.note.hide()
        self._set_state("moved")
        self.picture.setEnabled(False)

    def failed(self, why: str) -> None:
        self.note.setText(f"Not moved: {why}")
        self.note.show()
        self._set_state("failed")

    def restored(self) -> None:
        """Back from the trash (Undo): as it was, checked to go."""
        self.check.setEnabled(True)
        self.picture.setEnabled(True)
        self.note.hide()
        self._set_state("trash" if self.check.isChecked() else "keep")


class GroupRow(QFrame):
    """One group of near-duplicates: a heading, then its photos side by side, the keeper first."""

    def __init__(self, number: int, group: DuplicateGroup, found: DuplicatesFound,
                 thumbs: Callable[[str], QPixmap | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = group
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        heading = self.heading = QLabel(f"Group {number} · {figure_text(group.similarity)} · {scale_words(group.similarity)} · "
                         f"{plural(len(group.paths), 'photo')}", self)
        heading.setToolTip("The group's weakest link: every photo is joined to the others by a chain of pairs at "
                           "least this similar.")
        font = heading.font()
        font.setBold(True)
        heading.setFont(font)
        layout.addWidget(heading)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(8)
        self.tiles: list[CopyTile] = []
        for k, path in enumerate(group.paths):
            tile = CopyTile(path, thumbs(path), path == group.keep, found.figures.get(path, 0.0),
                            found.pixels.get(path, 0), found.sizes.get(path, 0), self)
            grid.addWidget(tile, k // COLUMNS, k % COLUMNS, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            self.tiles.append(tile)
        grid.setColumnStretch(COLUMNS, 1)
        layout.addLayout(grid)

    def all_going(self) -> bool:
        """Every photo of the group checked to go, none of them already moved."""
        return all(t.checked for t in self.tiles)


class DuplicatesDialog(QDialog):
    """The groups, the threshold, Move to Trash and Undo; what they do is the DuplicatesController's."""

    thresholdChosen = Signal(float)
    moveClicked = Signal(list)  # the paths checked to go
    undoClicked = Signal()
    cancelled = Signal()  # closed: the comparing under way is not wanted any more

    def __init__(self, thumbs: Callable[[str], QPixmap | None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs
        self.setWindowTitle("Find Duplicates")
        self.resize(COLUMNS * (TILE_WIDTH + 8) + 90, 640)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Similar at least:", self))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(SLIDER_MIN, SLIDER_MAX)
        self.slider.setValue(round(DEFAULT_THRESHOLD * 100))
        self.slider.setPageStep(5)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(5)
        self.slider.setMinimumWidth(220)
        self.slider.setAccessibleName("Threshold: how similar photos must be to be grouped")
        self.slider.setToolTip("0.95 and up: exact copies · 0.60 (the default): the same shot, a photo's copies and "
                               "edited versions · 0.45–0.60: the same scene, where unrelated photos begin to reach")
        self.meaning = QLabel(self)
        self.meaning.setWordWrap(True)
        row.addWidget(self.slider)
        row.addWidget(self.meaning, 1)
        layout.addLayout(row)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.summary)
        self.area = QScrollArea(self)
        self.area.setWidgetResizable(True)
        self.area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        layout.addWidget(self.area, 1)
        buttons = QDialogButtonBox(self)
        self.move_button = QPushButton("Move to Trash", self)
        self.move_button.setToolTip("The checked copies go to the desktop's trash (restore them from the file "
                                    "manager, or with Undo); nothing is deleted")
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setToolTip("Put the copies moved last back where they were, and back in the gallery")
        buttons.addButton(self.move_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.undo_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        layout.addWidget(buttons)
        self.rows: list[GroupRow] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECOMPUTE_AFTER_MS)
        self._timer.timeout.connect(lambda: self.thresholdChosen.emit(self.threshold()))
        self.slider.valueChanged.connect(self._on_slider)
        self.move_button.clicked.connect(self._on_move)
        self.undo_button.clicked.connect(self.undoClicked)
        buttons.rejected.connect(self.reject)
        self.undo_button.setEnabled(False)
        self.found: DuplicatesFound | None = None
        self._on_slider(self.slider.value(), apply=False)
        self._update_move()

    def threshold(self) -> float:
        return self.slider.value() / 100

    def set_threshold(self, threshold: float) -> None:
        self.slider.setValue(round(threshold * 100))

    def _on_slider(self, _value: int, apply: bool = True) -> None:
        self.meaning.setText(threshold_text(self.threshold()))
        if apply:
            self._timer.start()

    def reject(self) -> None:
        self._timer.stop()
        self.cancelled.emit()
        super().reject()

    # ---- what the controller shows ----
    def show_comparing(self, done: int, total: int) -> None:
        self.summary.setText(f"Comparing the gallery's photos: {done} of {total} (photos the results library does "
                             "not know yet are computed once)…")

    def show_message(self, text: str) -> None:
        self.summary.setText(text)

    def show_found(self, found: DuplicatesFound) -> None:
        self.found = found
        container = QWidget()
        column = QVBoxLayout(container)
        column.setSpacing(10)
        self.rows = []
        for number, group in enumerate(found.groups[:MAX_GROUPS], start=1):
            row = GroupRow(number, group, found, self.thumbs, container)
            for tile in row.tiles:
                tile.toggled.connect(self._update_move)
            column.addWidget(row)
            self.rows.append(row)
        column.addStretch(1)
        self.area.setWidget(container)
        self._update_move()

    def summary_text(self) -> str:
        found = self.found
        if found is None:
            return ""
        if not found.groups:
            text = (f"No near-duplicates among {plural(found.compared, 'photo')} at {found.threshold:.2f}. "
                    "Lower the threshold to find looser matches.")
        else:
            going = self.checked_tiles()
            size = sum((found.sizes.get(t.path, 0) for t in going), 0)
            text = (f"{plural(len(found.groups), 'group')} of near-duplicates among "
                    f"{plural(found.compared, 'photo')} at {found.threshold:.2f} · "
                    f"{plural(len(going), 'copy', 'copies')} checked to go ({human_size(size)}).")
            if len(found.groups) > MAX_GROUPS:
                text += f" Showing the surest {MAX_GROUPS}; move those, or raise the threshold, to see the others."
        if found.failures:
            names = ", ".join(_base(p) for p, _why in found.failures[:3])
            more = ", …" if len(found.failures) > 3 else ""
            text += f" {plural(len(found.failures), 'photo')} could not be compared ({names}{more})."
        return text

    def tiles(self) -> list[CopyTile]:
        return [t for row in self.rows for t in row.tiles]

    def checked_tiles(self) -> list[CopyTile]:
        return [t for t in self.tiles() if t.checked]

    def checked_paths(self) -> list[str]:
        return [t.path for t in self.checked_tiles()]

    def _update_move(self) -> None:
        n = len(self.checked_tiles())
        self.move_button.setText(f"Move {plural(n, 'Copy', 'Copies')} to Trash" if n else "Move to Trash")
        self.move_button.setEnabled(bool(n))
        if self.found is not None:
            self.summary.setText(self.summary_text())

    def _on_move(self) -> None:
        whole = [n for n, row in enumerate(self.rows, start=1) if row.all_going()]
        if whole:
            groups = ", ".join(str(n) for n in whole)
            self.summary.setText(f"Every photo of group {groups} is checked: keep at least one of each group "
                                 "(uncheck the one to keep). Nothing was moved.")
            return
        self.moveClicked.emit(self.checked_paths())

    def _tile_map(self) -> dict[str, list[CopyTile]]:
        out: dict[str, list[CopyTile]] = {}
        for t in self.tiles():
            out.setdefault(t.path, []).append(t)
        return out

    def mark_trashed(self, out: Trashed) -> None:
        tiles = self._tile_map()
        for path, _where in out.moved:
            for t in tiles.get(path, []):
                t.moved()
        for path, why in out.failed:
            for t in tiles.get(path, []):
                t.failed(why)
        self._update_move()

    def mark_restored(self, paths: list[str]) -> None:
        tiles = self._tile_map()
        for path in paths:
            for t in tiles.get(path, []):
                t.restored()
        self._update_move()

    def shows(self, path: str) -> bool:
        return path in self._tile_map()


class DuplicatesController(QObject):
    """Find Duplicates… in the window: the dialog, the worker's groups at the threshold chosen, Move to Trash and
    its Undo (Edit → Undo too: the files come back from the trash, then the photos into the gallery)."""

    found = Signal(object)  # DuplicatesFound, shown
    trashed = Signal(object)  # Trashed: what Move to Trash did
    restored = Signal(object)  # Untrashed: what Undo did

    def __init__(self, photos: GalleryModel, batch: BatchController, comparing: Comparing, worker: WorkerLike,
                 messages: Messages, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photos, self.batch, self.comparing, self.worker, self.messages = photos, batch, comparing, worker, messages
        self.parent_widget = parent
        self.dialog: DuplicatesDialog | None = None
        self._job: FindDuplicatesJob | None = None
        self._moves: list[Undoable] = []  # Move to Trash's entries in Undo's list, the last one last
        batch.undoChanged.connect(self._update_undo)

    def thumb(self, path: str) -> QPixmap | None:
        photo = self.photos.known(path)
        return photo.thumb if photo is not None else None

    def open_dialog(self) -> DuplicatesDialog:
        """Edit → Find Duplicates…: the dialog, and the gallery's groups at its threshold."""
        if self.dialog is None:
            self.dialog = DuplicatesDialog(self.thumb, self.parent_widget)
            self.dialog.thresholdChosen.connect(self.find)
            self.dialog.moveClicked.connect(self.move_to_trash)
            self.dialog.undoClicked.connect(self.undo)
            self.dialog.cancelled.connect(self._cancel)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self._update_undo()
        self.find(self.dialog.threshold())
        return self.dialog

    def find(self, threshold: float | None = None) -> FindDuplicatesJob | None:
        dialog = self.dialog
        threshold = threshold if threshold is not None else dialog.threshold() if dialog else DEFAULT_THRESHOLD
        paths = file_paths(self.photos)
        if len(paths) < 2:
            if dialog is not None:
                dialog.show_message("Nothing to compare: add photos to the gallery first (at least two files).")
            return None
        self._cancel()
        job = self._job = FindDuplicatesJob(paths, self.comparing.memo, threshold=threshold)
        self.comparing.submit(job, partial(self._on_found, job), partial(self._on_failed, job),
                              partial(self._on_progress, job))
        if dialog is not None:
            dialog.show_message(f"Comparing {plural(len(paths), 'photo')}…")
        return job

    def _cancel(self) -> None:
        if self._job is not None:
            self.comparing.cancel(self._job)
            self._job = None

    def _on_progress(self, job: FindDuplicatesJob, done: int, total: int) -> None:
        if job is self._job and self.dialog is not None:
            self.dialog.show_comparing(done, total)

    def _on_found(self, job: FindDuplicatesJob, found: DuplicatesFound) -> None:
        if job is not self._job:
            return
        self._job = None
        if self.dialog is not None:
            self.dialog.show_found(found)
        self.found.emit(found)

    def _on_failed(self, job: FindDuplicatesJob, message: str) -> None:
        if job is not self._job:
            return
        self._job = None
        text = "Stopped comparing photos." if message == CANCELLED else f"The photos could not be compared: {message}"
        if self.dialog is not None:
            self.dialog.show_message(text)
        else:
            self.messages.show_status(text, 8000)

    # ---- the trash ----
    def move_to_trash(self, paths: list[str]) -> None:
        """The checked copies to the desktop's trash (the worker moves them); then out of the gallery."""
        if not paths:
            return
        if self.dialog is not None:
            self.dialog.move_button.setEnabled(False)
            self.dialog.show_message(f"Moving {plural(len(paths), 'copy', 'copies')} to the Trash…")
        self.worker.submit(TrashJob(list(paths)), self._on_trashed, self._on_trash_failed)

    def _on_trashed(self, out: Trashed) -> None:
        if out.moved:
            photos = [p for p in (self.photos.known(path) for path, _where in out.moved) if p is not None]
            entry = self.batch.remove(photos, "Move to Trash", partial(self._bring_back, list(out.moved), photos))
            if entry is not None:
                self._moves.append(entry)
        freed = sum(self._size(path) for path, _where in out.moved)
        text = f"Moved {plural(len(out.moved), 'copy', 'copies')} to the Trash ({human_size(freed)})."
        if out.moved:
            text += " Undo (Ctrl+Z) puts them back; so does the file manager's Trash."
        if out.failed:
            path, why = out.failed[0]
            more = f" (and {len(out.failed) - 1} more)" if len(out.failed) > 1 else ""
            text += f" {plural(len(out.failed), 'copy was', 'copies were')} not moved: {_base(path)}: {why}{more}."
        self.messages.show_status(text, 15000)
        if self.dialog is not None:
            self.dialog.mark_trashed(out)
            self.dialog.show_message(text)
        self._update_undo()
        self.trashed.emit(out)

    def _on_trash_failed(self, message: str) -> None:
        if self.dialog is not None:
            self.dialog.show_message(f"Nothing was moved: {message}")
            self.dialog.move_button.setEnabled(bool(self.dialog.checked_paths()))
        else:
            self.messages.show_status(f"Nothing was moved: {message}", 10000)

    def _size(self, path: str) -> int:
        found = self.dialog.found if self.dialog is not None else None
        return found.sizes.get(path, 0) if found is not None else 0

    def undo(self) -> None:
        """The dialog's Undo: the last Move to Trash still undoable, whatever was done since."""
        for entry in reversed(self._moves):
            if self.batch.can_undo(entry):
                self.batch.undo(entry)
                return

    def _bring_back(self, moved: list[tuple[str, str]], photos: list[Photo], put_back: PutBack) -> None:
        """Undo of a Move to Trash: the worker moves the files back; then the photos go back into the gallery."""
        self.messages.show_status(f"Putting {plural(len(moved), 'copy', 'copies')} back from the Trash…", 10000)
        self.worker.submit(UntrashJob(moved), partial(self._on_restored, photos, put_back), self._on_restore_failed)

    def _on_restore_failed(self, message: str) -> None:
        self.messages.warning("Undo Move to Trash", f"Nothing was put back: {message} The copies are in the "
                              "desktop's Trash: the file manager can restore them.")

    def _on_restored(self, photos: list[Photo], put_back: PutBack, out: Untrashed) -> None:
        back = set(out.restored)
        put_back([p for p in photos if p.source in back])
        text = f"Put {plural(len(out.restored), 'copy', 'copies')} back from the Trash."
        if out.failed:
            path, why = out.failed[0]
            more = f" (and {len(out.failed) - 1} more)" if len(out.failed) > 1 else ""
            text += f" Still in the Trash: {_base(path)}: {why}{more}."
        if out.notes:
            text += " " + " ".join(out.notes)
        self.messages.show_status(text, 15000)
        if self.dialog is not None:
            self.dialog.mark_restored(out.restored)
            self.dialog.show_message(text)
            if self.dialog.isVisible() and any(not self.dialog.shows(p) for p in out.restored):
                self.find()  # the groups shown were found without them: found again, with them
        self._update_undo()
        self.restored.emit(out)

    def _update_undo(self) -> None:
        self._moves = [e for e in self._moves if self.batch.can_undo(e)]
        if self.dialog is not None:
            self.dialog.undo_button.setEnabled(bool(self._moves))
