"""The gallery: a list model of every photo (status, result, thumbnail, the display cache) and its view and delegate."""

from __future__ import annotations

import enum
import itertools
import os
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from ..core.records import Record
from ..worker.images import THUMB_SIDE, PhotoSource
from ..worker.results import PhotoResult
from .text import percent, plain_tooltip

CELL = QSize(132, 144)  # a 96-pixel thumbnail and two lines of text
DISPLAY_CACHE = 24  # full display copies kept; older photos keep their thumbnail, maps and labels


class Status(enum.Enum):
    QUEUED = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()
    STOPPED = enum.auto()

    @property
    def text(self) -> str:
        """How the gallery words the status under a thumbnail."""
        return STATUS_TEXT[self]


STATUS_TEXT = {Status.QUEUED: "waiting", Status.DONE: "done", Status.FAILED: "not classified", Status.STOPPED: "stopped"}


@dataclass(eq=False)
class Photo:
    """One photo in the gallery."""

    item_id: int
    source: PhotoSource | None  # path, encoded bytes, or image data (until the worker encoded it)
    name: str
    status: Status = Status.QUEUED
    result: PhotoResult | None = None  # without its display copy: that lives in the model's cache
    thumb: QPixmap | None = None
    note: str | None = None  # something to tell about this photo now (a failed recompute, a lost file)

    @property
    def error(self) -> str | None:
        return self.result.error if self.result is not None and not self.result.ok else None

    def caption(self) -> str:
        if self.status is Status.DONE and self.result is not None:
            top = self.result.top[0]
            return f"{top.label} {percent(top.prob)}"
        return self.status.text

    def tooltip(self, waiting: str) -> str:
        if self.status is Status.DONE and self.result is not None:
            top = self.result.top[0]
            lines = [self.name, f"{top.label} — {top.prob:.1%}"]
            if self.result.note:
                lines.append(self.result.note)
        elif self.status is Status.FAILED:
            lines = [self.name, self.error or "could not be classified"]
        elif self.status is Status.STOPPED:
            lines = [self.name, "Stopped before it was classified"]
        else:
            lines = [self.name, waiting]
        return "\n".join(lines)


    def label(self) -> str:
        """The top-1 label ("" until classified)."""
        return self.result.top[0].label if self.status is Status.DONE and self.result is not None else ""

    def confidence(self) -> float:
        """The top-1 probability (-1 until classified, so unanswered photos sort last)."""
        return self.result.top[0].prob if self.status is Status.DONE and self.result is not None else -1.0


StatusRole = Qt.ItemDataRole.UserRole + 1
PhotoRole = Qt.ItemDataRole.UserRole + 2
OtherModelRole = Qt.ItemDataRole.UserRole + 3  # the name of the model that gave the answer, if not the one in use


def path_key(source: object) -> str | None:
    """Two drops of one file share this key; image data without a file has none."""
    return os.path.normcase(os.path.abspath(source)) if isinstance(source, str) else None


class GalleryModel(QAbstractListModel):
    """Every photo dropped, in order. Statuses, counts and the display cache live here, not in widgets."""

    countsChanged = Signal()

    def __init__(self, parent: QObject | None = None, display_cache: int = DISPLAY_CACHE) -> None:
        super().__init__(parent)
        self._photos: list[Photo] = []
        self._rows: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._displays: OrderedDict[int, QImage] = OrderedDict()
        self._counts = {s: 0 for s in Status}  # kept as statuses change: the status bar asks after every photo
        self._paths: dict[str, int] = {}  # files in the gallery (-> their photo): one file is never added twice
        self.display_cache = display_cache
        self.waiting_text = "Waiting for the model"
        self.model_key: str | None = None  # the model in use: answers of another are marked
        self.model_names: dict[str, str] = {}  # each model's key -> the name of its weights file, as loaded

    # ---- Qt model API ----
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._photos)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._photos):
            return None
        photo = self._photos[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{photo.caption()}\n{photo.name}"
        if role == Qt.ItemDataRole.ToolTipRole:
            other = self.other_model(photo)
            tip = photo.tooltip(self.waiting_text)
            if other is not None:
                tip += (f"\nThe answer of another model ({other}): showing the photo, or Edit → Retry, classifies it "
                        f"with {self.model_names.get(self.model_key or '', 'the model in use')}")
            return plain_tooltip(tip)
        if role == OtherModelRole:
            return self.other_model(photo)
        if role == StatusRole:
            return photo.status
        if role == PhotoRole:
            return photo
        return None

    # ---- access ----
    def __len__(self) -> int:
        return len(self._photos)

    def __iter__(self) -> Iterator[Photo]:
        return iter(self._photos)

    def photo(self, row: int) -> Photo | None:
        return self._photos[row] if 0 <= row < len(self._photos) else None

    def get(self, item_id: int) -> Photo | None:
        row = self._rows.get(item_id)
        return None if row is None else self._photos[row]

    def row_of(self, photo: Photo) -> int:
        return self._rows.get(photo.item_id, -1)

    def known(self, source: object) -> Photo | None:
        """The photo of this file, if the gallery has it already."""
        key = path_key(source)
        item_id = self._paths.get(key) if key is not None else None
        return None if item_id is None else self.get(item_id)

    def in_order(self, photos: Iterable[Photo]) -> list[Photo]:
        """Those of ``photos`` in the gallery, once each, in gallery order."""
        rows = sorted({self._rows[p.item_id] for p in photos if p.item_id in self._rows})
        return [self._photos[r] for r in rows]

    def counts(self) -> dict[Status, int]:
        return dict(self._counts)

    def _set_status(self, photo: Photo, status: Status) -> None:
        self._counts[photo.status] -= 1
        self._counts[status] += 1
        photo.status = status

    def records(self, only: Collection[int] | None = None) -> list[Record]:
        """What Export writes: the core's record of every photo that has an answer (of those ``only`` names)."""
        return [p.result.record for p in self._photos if p.result is not None and p.result.record
                and (only is None or p.item_id in only)]

    # ---- changes ----
    def add(self, sources: Iterable[tuple[PhotoSource | None, str]], status: Status = Status.QUEUED) -> list[Photo]:
        """Add photos; a file already in the gallery is skipped. Returns the photos added."""
        new = []
        for source, name in sources:
            key = path_key(source)
            if key is not None:
                if key in self._paths:
                    continue
            photo = Photo(next(self._ids), source, name, status)
            if key is not None:
                self._paths[key] = photo.item_id
            new.append(photo)
        self._insert(new)
        return new

    def _insert(self, new: list[Photo]) -> None:
        if new:
            first = len(self._photos)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for i, photo in enumerate(new):
                self._photos.append(photo)
                self._rows[photo.item_id] = first + i
                self._counts[photo.status] += 1
            self.endInsertRows()
            self.countsChanged.emit()

    def restore(self, photos: list[Photo], rows: list[int] | None = None) -> None:
        """Put back photos taken out by ``clear`` or ``remove`` (undo): at ``rows`` (where ``remove`` found them,
        ascending), else after those added since. A file added again meanwhile is not put back twice."""
        places = rows if rows is not None and len(rows) == len(photos) else [None] * len(photos)
        back = [(p, row) for p, row in zip(photos, places) if path_key(p.source) not in self._paths]
        for photo, _row in back:
            if photo.status is Status.QUEUED:  # its place in the worker's line is gone
                photo.status = Status.STOPPED
        for photo, _row in back:
            key = path_key(photo.source)
            if key is not None:
                self._paths[key] = photo.item_id
        if rows is None:
            self._insert([p for p, _row in back])
            return
        for photo, row in back:  # ascending: each photo goes back where it was, before the ones after it
            at = len(self._photos) if row is None else min(row, len(self._photos))
            self.beginInsertRows(QModelIndex(), at, at)
            self._photos.insert(at, photo)
            self._rows = {p.item_id: i for i, p in enumerate(self._photos)}
            self._counts[photo.status] += 1
            self.endInsertRows()
        if back:
            self.countsChanged.emit()

    def remove(self, photos: Iterable[Photo]) -> list[Photo]:
        """Take photos out of the gallery; returns those that were in it, in gallery order (``rows_of``
        them first to put them back where they were)."""
        rows = sorted({self._rows[p.item_id] for p in photos if p.item_id in self._rows}, reverse=True)
        gone = []
        for row in rows:  # from the end, so earlier rows keep their numbers
            self.beginRemoveRows(QModelIndex(), row, row)
            photo = self._photos.pop(row)
            self._forget(photo)
            self._rows = {p.item_id: i for i, p in enumerate(self._photos)}
            self.endRemoveRows()
            gone.append(photo)
        if gone:
            self.countsChanged.emit()
        return gone[::-1]

    def _forget(self, photo: Photo) -> None:
        self._counts[photo.status] -= 1
        self._displays.pop(photo.item_id, None)
        key = path_key(photo.source)
        if key is not None:
            self._paths.pop(key, None)

    def requeue(self, photo: Photo) -> None:
        """A failed or stopped photo goes back in line (Retry)."""
        self._set_status(photo, Status.QUEUED)
        photo.result, photo.note = None, None
        self._changed(photo)
        self.countsChanged.emit()

    def set_result(self, res: PhotoResult) -> Photo | None:
        """A batch answer; returns the photo, or None when it was removed meanwhile."""
        photo = self.get(res.item_id)
        if photo is None:
            return None
        self._absorb(photo, res)
        self._set_status(photo, Status.DONE if res.ok else Status.FAILED)
        photo.note = None
        self._changed(photo)
        self.countsChanged.emit()
        return photo

    def set_recomputed(self, res: PhotoResult) -> Photo | None:
        photo = self.get(res.item_id)
        if photo is None or photo.status is not Status.DONE:
            return None
        self._absorb(photo, res)
        photo.note = None
        self._changed(photo)
        return photo

    def _absorb(self, photo: Photo, res: PhotoResult) -> None:
        if res.encoded is not None:
            photo.source = res.encoded  # image data is kept as the PNG the worker made of it
        if res.display is not None:
            self.cache_display(photo.item_id, res.display)
            res.display = None
        if res.thumb is not None:
            photo.thumb = QPixmap.fromImage(res.thumb)
            res.thumb = None
        photo.result = res

    def set_note(self, photo: Photo, note: str | None) -> None:
        photo.note = note
        self._changed(photo)

    def mark_stopped(self, item_ids: Iterable[int]) -> int:
        n = 0
        for item_id in item_ids:
            photo = self.get(item_id)
            if photo is not None and photo.status is Status.QUEUED:
                self._set_status(photo, Status.STOPPED)
                self._changed(photo)
                n += 1
        if n:
            self.countsChanged.emit()
        return n

    # ---- the model in use ----
    def set_model(self, key: str | None, name: str) -> None:
        """The model now in use (``name``: its weights file): every answer another model gave is marked."""
        if key is not None:
            self.model_names[key] = name
        changed = key != self.model_key
        self.model_key = key
        if self._photos and (changed or key is not None):  # the marks, or a name in a tooltip
            self.dataChanged.emit(self.index(0), self.index(len(self._photos) - 1))

    def other_model(self, photo: Photo) -> str | None:
        """The name of the model whose answer ``photo`` shows, when that is not the model in use (None: it is, or
        it is not known, or there is no answer)."""
        res = photo.result
        if (photo.status is not Status.DONE or res is None or not res.ok or res.model is None or self.model_key is None
                or res.model == self.model_key):
            return None
        return self.model_names.get(res.model, "an earlier model")

    def answered_by_other(self) -> list[Photo]:
        """The photos whose answers are another model's."""
        return [p for p in self._photos if self.other_model(p) is not None]

    def set_waiting_text(self, text: str) -> None:
        self.waiting_text = text
        if self._photos:
            self.dataChanged.emit(self.index(0), self.index(len(self._photos) - 1), [Qt.ItemDataRole.ToolTipRole])

    def clear(self) -> list[Photo]:
        """Empty the gallery; returns what was in it (for undo)."""
        self.beginResetModel()
        gone, self._photos = self._photos, []
        self._rows.clear()
        self._displays.clear()
        self._paths.clear()
        self._counts = {s: 0 for s in Status}
        self.endResetModel()
        self.countsChanged.emit()
        return gone

    def _changed(self, photo: Photo) -> None:
        idx = self.index(self._rows[photo.item_id])
        self.dataChanged.emit(idx, idx)

    # ---- the display cache: full view copies of the most recently seen photos ----
    def display(self, item_id: int) -> QImage | None:
        image = self._displays.get(item_id)
        if image is not None:
            self._displays.move_to_end(item_id)
        return image

    def cache_display(self, item_id: int, image: QImage) -> None:
        if item_id not in self._rows:
            return
        self._displays[item_id] = image
        self._displays.move_to_end(item_id)
        while len(self._displays) > self.display_cache:
            self._displays.popitem(last=False)

    def cached_displays(self) -> int:
        return len(self._displays)


BADGES = {Status.QUEUED: ("…", QColor(130, 130, 130)), Status.FAILED: ("!", QColor(200, 50, 50)),
          Status.STOPPED: ("■", QColor(120, 120, 120))}


class GalleryDelegate(QStyledItemDelegate):
    """Paints a cell: the thumbnail (or a status badge) and two lines, the answer and the file name."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        photo: Photo = index.data(PhotoRole)
        if photo is None:
            return
        painter.save()
        rect = option.rect
        pal = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect.adjusted(2, 2, -2, -2), pal.color(QPalette.ColorRole.Highlight))
        icon = QRect(rect.x() + (rect.width() - THUMB_SIDE) // 2, rect.y() + 4, THUMB_SIDE, THUMB_SIDE)
        if photo.thumb is not None:
            size = photo.thumb.deviceIndependentSize().toSize()
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(icon.center())
            painter.drawPixmap(target, photo.thumb)
        if photo.status in BADGES:
            text, color = BADGES[photo.status]
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            badge = icon.adjusted(8, 8, -8, -8) if photo.thumb is None else QRect(icon.right() - 27, icon.y(), 28, 28)
            painter.drawRoundedRect(badge, 10, 10)
            font = QFont(option.font)
            font.setPixelSize(badge.height() // 2)
            font.setBold(True)
            painter.setFont(font)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
        if option.state & QStyle.StateFlag.State_HasFocus:
            # the keyboard's place, drawn plainly: the style's own focus rectangle is faint or absent in many themes
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            ring = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Highlight)
            painter.setPen(QPen(ring, 2, Qt.PenStyle.DotLine if selected else Qt.PenStyle.SolidLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(4, 4, -4, -4) if selected else rect.adjusted(2, 2, -2, -2))
        painter.setFont(option.font)
        text_pen = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        fm = option.fontMetrics
        width = rect.width() - 8
        y = icon.bottom() + 4
        other = index.data(OtherModelRole) is not None  # another model's answer: its caption greyed, in italics
        for i, line in enumerate(self.lines(photo, fm, width)):
            font = QFont(option.font)
            font.setItalic(other and i == 0)
            painter.setFont(font)
            painter.setPen(pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                           if other and i == 0 and not selected else text_pen)
            painter.drawText(QRect(rect.x() + 4, y, width, fm.height()), Qt.AlignmentFlag.AlignHCenter, line)
            y += fm.height()
        painter.restore()

    @staticmethod
    def lines(photo: Photo, fm: QFontMetrics, width: int) -> list[str]:
        """The two lines under the thumbnail as painted: the answer (cut at its end), the file name (cut in
        the middle, so its extension shows)."""
        return [fm.elidedText(photo.caption(), Qt.TextElideMode.ElideRight, width),
                fm.elidedText(_basename(photo.name), Qt.TextElideMode.ElideMiddle, width)]


def _basename(name: str) -> str:
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or name


class GalleryView(QListView):
    """An icon grid that lays out thousands of entries in batches, so the window never waits for it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setUniformItemSizes(True)
        self.setGridSize(CELL + QSize(4, 4))
        # Ctrl+A, Shift+click, Ctrl+click, Shift+arrows/End: Copy, Remove, Retry and Export take the selection
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAcceptDrops(False)
        self.setDragEnabled(False)
        self.setMinimumWidth(CELL.width() + 24)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # entries wrap; never scroll sideways
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setItemDelegate(GalleryDelegate(self))
