"""The results library in the window: last time's gallery at start, the library search, Forget Photo, Clear
Library, the library's size, and Write Keywords (XMP sidecars for photo managers)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QPoint, QRect, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QFont, QFontMetrics, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from ..worker.images import THUMB_SIDE
from ..worker.jobs.library import (
    ClearLibraryJob,
    ForgetJob,
    LibraryInfoJob,
    LibrarySearchJob,
    RestoreJob,
    WriteKeywordsJob,
    default_path,
)
from ..worker.results import KeywordPhoto, KeywordsOutcome, LibraryInfo, LibraryMatch, Restored
from ..worker.runner import WorkerLike
from .captions import line_height, probe_height, wrapped
from .gallery import GalleryModel, Photo, Status
from .messages import Messages
from .text import percent, plural

if TYPE_CHECKING:
    from .controller import BatchController

SAVE_AFTER_MS = 1500  # the gallery is written this long after it last changed (and when the window closes)
SEARCH_AFTER_MS = 250  # typing in the Library window searches once the user pauses


def library_path(settings: QSettings) -> str:
    """Where the window keeps its results: the settings' ``library_path``, else the user's data folder."""
    chosen = settings.value("library_path", "", type=str)
    return chosen if isinstance(chosen, str) and chosen else str(default_path())


def human_size(n: int) -> str:
    """1536 -> "1.5 KB"; the library's size as people read it."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def describe(info: LibraryInfo) -> str:
    if not info.available:
        return "Results are not being kept (no results library)."
    return f"Results library: {plural(info.count, 'photo')}, {human_size(info.size_bytes)} — {info.path}"


class LibraryController(QObject):
    """The window's side of the results library; every library operation runs on the worker."""

    infoChanged = Signal(object)  # LibraryInfo
    restored = Signal(int)  # last time's gallery is in (how many photos)
    searched = Signal(object)  # list[LibraryMatch], for the Library window
    keywordsDone = Signal(str)  # the summary shown at the end of Write Keywords

    def __init__(self, photos: GalleryModel, controller: BatchController, worker: WorkerLike, messages: Messages,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photos, self.controller, self.worker, self.messages = photos, controller, worker, messages
        self.parent_widget = parent
        self.info = LibraryInfo()
        self.is_restored = False  # until then the gallery is not written (a close before it would lose it)
        self.dialog: LibraryDialog | None = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_AFTER_MS)
        self._save_timer.timeout.connect(self.save_gallery)
        for signal in (photos.rowsInserted, photos.rowsRemoved, photos.modelReset):
            signal.connect(self._gallery_changed)
        controller.updated.connect(self._gallery_changed)  # answers grow the library: its size is asked again

    # ---- last time's gallery ----
    def restore(self) -> None:
        """Ask for last time's gallery (answered once the model is loaded; its photos are then answered from the
        library together, and only those it does not hold are classified)."""
        self.worker.submit(RestoreJob(), self._on_restored, self._on_restore_failed)

    def _on_restored(self, res: Restored) -> None:
        self.is_restored = True
        self._on_info(res.info)
        if res.paths:
            new = self.controller.enqueue([(p, p) for p in res.paths], select=False, known=True)
            if new:
                self.messages.show_status(f"Showing last time's {plural(len(new), 'photo')} from the results library.", 6000)
        if res.missing:
            first = res.missing[0]
            more = f" (and {len(res.missing) - 1} more)" if len(res.missing) > 1 else ""
            self.messages.show_status(f"{plural(len(res.missing), 'photo')} from last time could not be found and "
                                      f"{'was' if len(res.missing) == 1 else 'were'} left out: {first}{more}.", 10000)
        self.restored.emit(len(res.paths))

    def _on_restore_failed(self, message: str) -> None:
        self.is_restored = True
        self.messages.show_status(f"Last time's gallery could not be shown: {message}", 10000)
        self.restored.emit(0)

    def gallery_paths(self) -> list[str]:
        return [p.source for p in self.photos if isinstance(p.source, str)]

    def _gallery_changed(self, *_args: object) -> None:
        if self.is_restored:
            self._save_timer.start()

    def save_gallery(self) -> None:
        """Write the gallery for the next start (and ask for the library's size, which answers have grown)."""
        self._save_timer.stop()
        if self.is_restored:
            self.worker.keep_gallery(self.gallery_paths())
            self.refresh_info()

    def closing(self) -> None:
        """The window closes: the gallery as it is now is written as the worker stops."""
        self._save_timer.stop()
        if self.is_restored:
            self.worker.keep_gallery(self.gallery_paths())

    # ---- size ----
    def refresh_info(self, then: Callable[[], None] | None = None) -> None:
        """Ask the worker what the library holds now (``then``: called once the answer is in)."""

        def done(info: LibraryInfo) -> None:
            self._on_info(info)
            if then is not None:
                then()

        self.worker.submit(LibraryInfoJob(), done, lambda message: None)

    def _on_info(self, info: LibraryInfo) -> None:
        self.info = info
        if info.note:
            self.messages.warning("Results library", info.note)
        self.infoChanged.emit(info)

    # ---- search ----
    def open_library(self, text: str = "") -> LibraryDialog:
        """The Library window: every photo ever classified whose label or name matches, to add to the gallery."""
        if self.dialog is None:
            self.dialog = LibraryDialog(self, self.parent_widget)
        self.dialog.set_text(text)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.search(text)
        return self.dialog

    def search(self, text: str) -> None:
        job = LibrarySearchJob(text.strip())
        if self.dialog is not None:
            self.dialog.searching()  # the worker may be busy with a photo: say so until the answer comes
        self.worker.submit(job, partial(self._on_searched, job), self._on_search_failed)

    def _on_searched(self, job: LibrarySearchJob, matches: list[LibraryMatch]) -> None:
        if self.dialog is not None and job.text == self.dialog.text():
            self.dialog.show_matches(matches, self.info)
        self.searched.emit(matches)

    def _on_search_failed(self, message: str) -> None:
        if self.dialog is not None:
            self.dialog.show_message(message)
        else:
            self.messages.show_status(message, 8000)

    def add_to_gallery(self, paths: list[str]) -> None:
        """Photos from the library into the gallery: answered from the library, without a forward pass."""
        if paths:
            new = self.controller.enqueue([(p, p) for p in paths], known=True)
            known = len(paths) - len(new)
            more = f" ({known} already in the gallery)" if known else ""
            self.messages.show_status(f"Added {plural(len(new), 'photo')} from the library{more}.", 5000)

    # ---- forget and clear ----
    def forget_selected(self, photos: Photo | list[Photo] | None) -> None:
        """Edit → Forget Photo: the selected photos' results leave the library, and the photos the gallery (the
        files stay; Ctrl+Z brings them back into the gallery, answered again as photos new to the library)."""
        chosen = [photos] if isinstance(photos, Photo) else [p for p in (photos or []) if p is not None]
        if not chosen:
            self.messages.show_status("Select a photo first.", 4000)
            return
        paths = [p.source for p in chosen if isinstance(p.source, str)]
        self.forget(paths)
        self.controller.remove(chosen)
        what = chosen[0].name if len(chosen) == 1 else plural(len(chosen), "photo")
        self.messages.show_status(f"Forgot {what}: the results are no longer kept (the files are untouched).", 6000)

    def forget(self, paths: list[str]) -> None:
        if paths:
            self.worker.submit(ForgetJob(paths), self._on_forgotten, self._on_library_failed)

    def _on_forgotten(self, info: LibraryInfo) -> None:
        self._on_info(info)
        if self.dialog is not None and self.dialog.isVisible():
            self.search(self.dialog.text())

    def clear_library(self) -> None:
        """Edit → Clear Library…: asks first, naming what it holds (its size is asked of the worker first)."""
        self.refresh_info(then=self._ask_clear)

    def _ask_clear(self) -> None:
        if not self.info.available:
            self.messages.show_status("There is no results library to clear.", 5000)
            return
        if self.confirm_clear(self.info):
            self.worker.submit(ClearLibraryJob(), self._on_cleared, self._on_library_failed)

    def confirm_clear(self, info: LibraryInfo) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Clear Library",
                          f"Remove the results of all {plural(info.count, 'photo')} ({human_size(info.size_bytes)}) "
                          "from the results library? Photos will be classified again the next time they are "
                          "opened. The photos themselves and the gallery are not touched.",
                          QMessageBox.StandardButton.Cancel, self.parent_widget)
        box.setTextFormat(Qt.TextFormat.PlainText)
        clear = box.addButton("Clear Library", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is clear

    def _on_cleared(self, info: LibraryInfo) -> None:
        self._on_info(info)
        self.messages.show_status(f"Cleared the results library ({plural(info.changed, 'photo')}).", 6000)
        if self.dialog is not None and self.dialog.isVisible():
            self.search(self.dialog.text())

    def _on_library_failed(self, message: str) -> None:
        self.messages.warning("Results library", message)

    # ---- keywords ----
    def write_keywords_dialog(self, selected: list[Photo]) -> None:
        """File → Write Keywords…: for the selected photos or all of them, asked first."""
        done = [p for p in self.photos if p.status is Status.DONE]
        if not done:
            self.messages.show_status("No classified photos to write keywords for yet.", 5000)
            return
        chosen = [p for p in selected if p.status is Status.DONE]
        scope = self.ask_keywords_scope(len(chosen), len(done))
        if scope is not None:
            self.write_keywords(chosen if scope == "selected" else done)

    def ask_keywords_scope(self, selected: int, total: int) -> str | None:
        """"selected", "all", or None (cancelled)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Write Keywords",
                          "Write the top classes as keywords where photo managers (digiKam, darktable, Lightroom) "
                          "read them: a sidecar file NAME.EXT.xmp beside each photo. An existing sidecar is "
                          "merged, never replaced; the photos themselves are not changed.",
                          QMessageBox.StandardButton.Cancel, self.parent_widget)
        box.setTextFormat(Qt.TextFormat.PlainText)
        choices: dict[QAbstractButton, str] = {box.addButton(f"All {total} Photos", QMessageBox.ButtonRole.AcceptRole): "all"}
        if selected and selected < total:
            label = "Selected Photo" if selected == 1 else f"The {selected} Selected"
            button = box.addButton(label, QMessageBox.ButtonRole.AcceptRole)
            choices[button] = "selected"
            box.setDefaultButton(button)
        box.exec()
        return choices.get(box.clickedButton())

    def write_keywords(self, photos: list[Photo], min_prob: float | None = None) -> None:
        todo = [KeywordPhoto(p.item_id, p.source if isinstance(p.source, str) else None, p.name,
                             [{"rank": t.rank, "index": t.index, "label": t.label, "prob": t.prob} for t in p.result.top])
                for p in photos if p.status is Status.DONE and p.result is not None and p.result.top]
        if todo:
            self.worker.submit(WriteKeywordsJob(todo, min_prob), self._on_keywords, self._on_keywords_failed,
                               self._on_keywords_progress)
            self.messages.show_status(f"Writing keywords for {plural(len(todo), 'photo')}…", 30000)

    def _on_keywords_progress(self, done: int, total: int) -> None:
        self.messages.show_status(f"Writing keywords… {done} of {total}", 30000)

    def _on_keywords(self, out: KeywordsOutcome) -> None:
        for item_id, _name, why in out.failed:
            photo = self.photos.get(item_id)
            if photo is not None:
                self.photos.set_note(photo, f"Keywords not written: {why}")
        summary = keywords_summary(out)
        first = f" ({os.path.basename(out.failed[0][1]) or out.failed[0][1]}{', …' if len(out.failed) > 1 else ''})" \
            if out.failed else ""
        self.messages.show_status(summary.splitlines()[0].rstrip(":.") + first + ".", 10000)
        if out.failed:
            self.messages.warning("Write Keywords", summary)
        else:
            self.messages.dialog("Write Keywords", summary)
        self.keywordsDone.emit(summary)

    def _on_keywords_failed(self, message: str) -> None:
        self.messages.warning("Write Keywords", f"No keywords were written: {message}")
        self.keywordsDone.emit(message)


def keywords_summary(out: KeywordsOutcome) -> str:
    """ "Keywords written for 12 photos; 1 failed: a.jpg: the folder is read-only" (each failure on its line)."""
    text = f"Keywords written for {plural(len(out.written), 'photo')}"
    if not out.failed:
        return text + "."
    lines = [f"{text}; {len(out.failed)} failed:"]
    lines += [f"{os.path.basename(name) or name}: {why}" for _item, name, why in out.failed[:20]]
    if len(out.failed) > 20:
        lines.append(f"… and {len(out.failed) - 20} more.")
    return "\n".join(lines)


SEARCH_TIP = ("Finds photos whose top class, or another of their top five classes at 10 % or more, contains the text "
              "(less probable classes are left out: a 2 % guess is not what a photo shows), and photos whose file "
              "name does. Those with the class on top come first, then by its probability.")
CaptionRole = Qt.ItemDataRole.UserRole + 2
NameRole = Qt.ItemDataRole.UserRole + 3


def match_caption(m: LibraryMatch) -> str:
    """ "tabby 37 % (#3)": the searched class, its probability and its place in the photo's top classes; found by
    the file name alone, the top class."""
    text = f"{m.label} {percent(m.prob)}"
    return f"{text} (#{m.rank})" if m.rank is not None else text


def match_tooltip(m: LibraryMatch) -> str:
    when = time.strftime("%d %b %Y %H:%M", time.localtime(m.classified_at)) if m.classified_at else ""
    lines = [m.path]
    if m.rank is None:
        lines.append(f"Found by its file name. Top class: {m.label} — {m.prob:.1%}")
    else:
        lines.append(f"{m.label}: #{m.rank} of its top classes, {m.prob:.1%}")
        if m.rank != 1 and m.top_label:
            lines.append(f"Top class: {m.top_label} — {m.top_prob:.1%}")
    lines.append(f"Classified {when}")
    if not m.exists:
        lines.append("The file is no longer there.")
    return "\n".join(lines)


class MatchDelegate(QStyledItemDelegate):
    """A match in the Library window: its thumbnail in a box of its own (square, portrait or landscape alike), then
    its whole caption (wrapped onto a second line if need be) and the file name (cut in the middle)."""

    WIDTH = 150
    CAPTION_LINES = 2

    def cell_size(self, font: QFont) -> QSize:
        return QSize(self.WIDTH, 4 + THUMB_SIDE + 4 + (self.CAPTION_LINES + 1) * probe_height(font) + 4)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return self.cell_size(option.font)

    def lines(self, index: QModelIndex | QPersistentModelIndex, font: QFont, width: int) -> list[str]:
        caption = str(index.data(CaptionRole) or "")
        name = str(index.data(NameRole) or "")
        return [*wrapped(font, caption, width, self.CAPTION_LINES),
                QFontMetrics(font).elidedText(name, Qt.TextElideMode.ElideMiddle, width)]

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        rect, pal = option.rect, option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect.adjusted(2, 2, -2, -2), pal.color(QPalette.ColorRole.Highlight))
        box = QRect(rect.x() + (rect.width() - THUMB_SIDE) // 2, rect.y() + 4, THUMB_SIDE, THUMB_SIDE)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(icon, QIcon) and not icon.isNull():
            pixmap = icon.pixmap(QSize(THUMB_SIDE, THUMB_SIDE))
            target = QRect(QPoint(0, 0), pixmap.deviceIndependentSize().toSize())
            target.moveCenter(box.center())
            painter.drawPixmap(target, pixmap)
        if option.state & QStyle.StateFlag.State_HasFocus:
            ring = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Highlight)
            painter.setPen(QPen(ring, 2, Qt.PenStyle.DotLine if selected else Qt.PenStyle.SolidLine))
            painter.drawRect(rect.adjusted(3, 3, -3, -3))
        brush = index.data(Qt.ItemDataRole.ForegroundRole)
        color = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        painter.setPen(brush.color() if isinstance(brush, QBrush) and not selected else color)
        painter.setFont(option.font)
        width = rect.width() - 8
        y = box.bottom() + 4
        for line in self.lines(index, option.font, width):
            height = line_height(option.font, line)
            painter.drawText(QRect(rect.x() + 4, y, width, height), Qt.AlignmentFlag.AlignHCenter, line)
            y += height
        painter.restore()


class LibraryDialog(QDialog):
    """Search everything ever classified (label or file name) and add what it finds to the gallery."""

    def __init__(self, library: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.setWindowTitle("Results Library")
        self.resize(640, 480)
        layout = QVBoxLayout(self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search every photo classified so far: a class (espresso) or a file name")
        self.search.setToolTip(SEARCH_TIP)
        self.search.setClearButtonEnabled(True)
        self.summary = QLabel(self)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        self.delegate = MatchDelegate(self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setGridSize(self.delegate.cell_size(self.list.font()) + QSize(4, 4))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(True)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        buttons = QDialogButtonBox(self)
        self.add_button = QPushButton("Add to Gallery", self)
        self.add_all_button = QPushButton("Add All", self)
        self.forget_button = QPushButton("Forget", self)
        self.forget_button.setToolTip("Remove the selected photos' results from the library (the files stay)")
        buttons.addButton(self.add_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.add_all_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.forget_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        layout.addWidget(self.search)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SEARCH_AFTER_MS)
        self._timer.timeout.connect(lambda: library.search(self.text()))
        self.search.textChanged.connect(lambda _text: self._timer.start())
        self.search.returnPressed.connect(self._search_now)
        self.add_button.clicked.connect(lambda: library.add_to_gallery(self.chosen()))
        self.add_all_button.clicked.connect(lambda: library.add_to_gallery(self.chosen(everything=True)))
        self.forget_button.clicked.connect(lambda: library.forget(self.chosen(present=False)))
        self.list.itemDoubleClicked.connect(lambda item: library.add_to_gallery(self._paths([item])))
        self.list.itemSelectionChanged.connect(self._update_buttons)
        buttons.rejected.connect(self.close)
        self._update_buttons()

    def text(self) -> str:
        return self.search.text().strip()

    def _search_now(self) -> None:
        self._timer.stop()
        self.library.search(self.text())

    def set_text(self, text: str) -> None:
        self.search.blockSignals(True)
        self.search.setText(text)
        self.search.blockSignals(False)

    def searching(self) -> None:
        """Until the search's answer comes: what is asked, and the earlier answer greyed out."""
        asked = f"“{self.text()}”" if self.text() else "every photo"
        self.summary.setText(f"Searching the library for {asked}…")
        self.list.setEnabled(False)

    def show_message(self, text: str) -> None:
        self.list.setEnabled(True)
        self.list.clear()
        self.summary.setText(text)
        self._update_buttons()

    def show_matches(self, matches: list[LibraryMatch], info: LibraryInfo) -> None:
        """The matches in the order found (best first), each captioned with the searched class, its probability
        and its place in the photo's top classes ("tabby 37 % (#3)"), then the file name."""
        self.list.clear()
        for m in matches:
            name = m.path.replace("\\", "/").rsplit("/", 1)[-1]
            caption = match_caption(m) if m.exists else "(file missing)"
            item = QListWidgetItem(f"{caption}\n{name}")
            if m.thumb is not None:
                item.setIcon(QIcon(QPixmap.fromImage(m.thumb)))
            item.setToolTip(match_tooltip(m))
            item.setData(Qt.ItemDataRole.UserRole, m.path)
            if not m.exists:
                item.setForeground(self.palette().placeholderText())
            item.setData(Qt.ItemDataRole.UserRole + 1, m.exists)
            item.setData(CaptionRole, caption)
            item.setData(NameRole, name)
            self.list.addItem(item)
        self.list.setEnabled(True)
        if self.text():
            what = f"“{self.text()}”"
            found = f"{plural(len(matches), 'photo')} found for {what}" if matches else f"Nothing found for {what}"
        else:
            found = f"{plural(len(matches), 'photo')}, newest first" if matches else "The library is empty"
        how = (" (as the top class, or another of the top five at 10\u00a0% or more, best first; #N: its place "
               "there), or in the file name") if self.text() and matches else ""
        lib = (f" · the library holds {plural(info.count, 'photo')} ({human_size(info.size_bytes)})"
               if info.available else "")
        self.summary.setText(found + how + lib + ".")
        self._update_buttons()

    def _paths(self, items: list[QListWidgetItem], present: bool = True) -> list[str]:
        return [item.data(Qt.ItemDataRole.UserRole) for item in items
                if not present or item.data(Qt.ItemDataRole.UserRole + 1)]

    def chosen(self, everything: bool = False, present: bool = True) -> list[str]:
        """The selected matches' files (``everything``: all of them); ``present``: only files still there."""
        items = [self.list.item(i) for i in range(self.list.count())] if everything else self.list.selectedItems()
        return self._paths(items, present)

    def _update_buttons(self) -> None:
        self.add_button.setEnabled(bool(self.chosen()))
        self.add_all_button.setEnabled(bool(self.chosen(everything=True)))
        self.forget_button.setEnabled(bool(self.list.selectedItems()))
