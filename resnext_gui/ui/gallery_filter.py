"""Sorting, filtering and searching the gallery: a proxy over GalleryModel and the bar of controls above it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, QSize, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QBoxLayout, QComboBox, QLineEdit, QStyle, QStyleOptionComboBox, QVBoxLayout, QWidget

from .gallery import Photo, PhotoRole, Status

SORTS = (("added", "Order added"), ("label", "Label A–Z"), ("confidence", "Most confident"))
FILTERS = (("all", "All photos"), ("done", "Classified"), ("failed", "Failed only"), ("unfinished", "Waiting, stopped"))


class GalleryFilter(QSortFilterProxyModel):
    """What the gallery shows, and in which order. GalleryModel stays the one place photos live."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sort_key = "added"
        self.show = "all"
        self.text = ""
        self.rank: dict[int, int] | None = None  # Find Similar's order (photo id -> place), over ``sort_key``'s
        self.setDynamicSortFilter(True)

    def set_sort(self, key: str) -> None:
        self.sort_key = key
        self.rank = None  # another order chosen: Find Similar's ends
        if key == "added":
            self.sort(-1)  # the source's own order: no sorting work at all
        else:
            self.invalidate()
            self.sort(0, Qt.SortOrder.DescendingOrder if key == "confidence" else Qt.SortOrder.AscendingOrder)

    def set_rank(self, rank: dict[int, int] | None) -> None:
        """Order by ``rank`` (photo id -> place; photos it lacks last, in the order added); None: back to the
        order chosen (``sort_key``)."""
        if rank is None:
            self.set_sort(self.sort_key)
            return
        self.rank = rank
        self.invalidate()
        self.sort(0, Qt.SortOrder.AscendingOrder)

    def set_show(self, which: str) -> None:
        self._refilter(lambda: setattr(self, "show", which))

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "text", text.strip().casefold()))

    def _refilter(self, change: Callable[[], None]) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+; invalidateFilter() is deprecated there
            self.beginFilterChange()
            change()
            self.endFilterChange()
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        if self.show == "all" and not self.text:
            return True  # the usual case, asked for every photo added: no model lookups at all
        photo: Photo | None = self.sourceModel().index(row, 0, parent).data(PhotoRole)
        if photo is None:
            return False
        if self.show == "done" and photo.status is not Status.DONE:
            return False
        if self.show == "failed" and photo.status is not Status.FAILED:
            return False
        if self.show == "unfinished" and photo.status not in (Status.QUEUED, Status.STOPPED):
            return False
        return not self.text or self.text in photo.label().casefold() or self.text in photo.name.casefold()

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        a: Photo = left.data(PhotoRole)
        b: Photo = right.data(PhotoRole)
        if self.rank is not None:
            last = len(self.rank)
            return (self.rank.get(a.item_id, last), a.item_id) < (self.rank.get(b.item_id, last), b.item_id)
        if self.sort_key == "confidence":
            return (a.confidence(), -a.item_id) < (b.confidence(), -b.item_id)
        # unanswered photos after the labelled ones, then in the order added
        return (not a.label(), a.label().casefold(), a.item_id) < (not b.label(), b.label().casefold(), b.item_id)


class GalleryBar(QWidget):
    """Search box, sort order and filter above the gallery."""

    changed = Signal()

    def __init__(self, proxy: GalleryFilter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search labels and names")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Show only photos whose top label or file name contains this text (Ctrl+F; "
                               "Esc clears it, Down goes to the photos)")
        self.search.installEventFilter(self)
        self.below: QAbstractItemView | None = None  # where Down in the search box goes: the gallery
        self.sort = _combo(SORTS, "Sort the gallery", self)
        self.show_box = _combo(FILTERS, "Which photos to show", self)
        layout.addWidget(self.search)
        # side by side where both fit whole, else one above the other: a narrow gallery elided them ("Order ad…")
        self.row = row = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        row.setSpacing(4)
        row.addWidget(self.sort, 1)
        row.addWidget(self.show_box, 1)
        layout.addLayout(row)
        self.search.textChanged.connect(self._apply)
        self.sort.currentIndexChanged.connect(self._apply)
        self.show_box.currentIndexChanged.connect(self._apply)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_row(event.size().width())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit_row(self.width())

    def _fit_row(self, width: int) -> None:
        needed = whole_width(self.sort) + self.row.spacing() + whole_width(self.show_box)
        direction = QBoxLayout.Direction.LeftToRight if width >= needed else QBoxLayout.Direction.TopToBottom
        if self.row.direction() != direction:
            self.row.setDirection(direction)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        """In the search box, Esc clears the search (before the window's Esc = Stop sees it, while there is text)
        and Down goes on to the gallery, to its current photo (else its first)."""
        if watched is not self.search:
            return False
        kind = event.type()
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            key = event.key()  # type: ignore[attr-defined]
            if key == Qt.Key.Key_Escape and self.search.text():
                if kind == QEvent.Type.KeyPress:
                    self.search.clear()
                event.accept()
                return kind == QEvent.Type.KeyPress
            if key == Qt.Key.Key_Down and kind == QEvent.Type.KeyPress and self.below is not None:
                below = self.below
                model = below.model()
                if not below.currentIndex().isValid() and model is not None and model.rowCount():
                    below.setCurrentIndex(model.index(0, 0))
                below.setFocus(Qt.FocusReason.TabFocusReason)
                return True
        return False

    def _apply(self) -> None:
        self.proxy.set_text(self.search.text())
        if self.proxy.sort_key != self.sort.currentData():
            self.proxy.set_sort(self.sort.currentData())
        if self.proxy.show != self.show_box.currentData():
            self.proxy.set_show(self.show_box.currentData())
        self.changed.emit()

    def set_sort(self, key: str) -> None:
        self.sort.setCurrentIndex(max(0, self.sort.findData(key)))

    def set_show(self, which: str) -> None:
        self.show_box.setCurrentIndex(max(0, self.show_box.findData(which)))


def _combo(items: Iterable[tuple[str, str]], tip: str, parent: QWidget) -> QComboBox:
    box = QComboBox(parent)
    for key, text in items:
        box.addItem(text, key)
    box.setToolTip(tip)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(4)  # narrow enough for the window to fit a 640-px-wide screen
    return box


def whole_width(box: QComboBox) -> int:
    """The width at which ``box`` shows its longest item whole, as its style draws it."""
    metrics = box.fontMetrics()
    text = max((metrics.horizontalAdvance(box.itemText(i)) for i in range(box.count())), default=0)
    option = QStyleOptionComboBox()
    box.initStyleOption(option)
    size = box.style().sizeFromContents(QStyle.ContentsType.CT_ComboBox, option, QSize(text, metrics.height()), box)
    return size.width()
