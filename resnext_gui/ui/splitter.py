"""The window's three panes side by side (gallery, photo, controls): the photo gets the most room at any window
size, the gallery and the controls giving up width, down to their minimum, before it does."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSplitter, QWidget

PHOTO_SHARE = 0.5  # of the panes' width, at least, for the photo whenever the side panes can give it


def photo_first(sizes: Sequence[int], minimums: Sequence[int], photo: int = 1, share: float = PHOTO_SHARE,
                preferred: Sequence[int] | None = None) -> list[int]:
    """``sizes`` with the pane ``photo`` given at least ``share`` of their sum, taken from the other panes in
    proportion to what each has above its minimum; unchanged when the photo has that already (a width the user
    chose is kept while there is room for it). ``preferred``: the widths the other panes would like; one that has
    less (squeezed in a small window, then the window grown again) gets it back from what the photo has above
    its share."""
    out = list(sizes)
    total = sum(out)
    if preferred is not None:
        for i, want in enumerate(preferred):
            above = out[photo] - round(total * share)
            if i != photo and out[i] < want and above > 0:
                back = min(want - out[i], above)
                out[i] += back
                out[photo] -= back
    need = round(total * share) - out[photo]
    spare = [max(0, size - low) if i != photo else 0 for i, (size, low) in enumerate(zip(out, minimums))]
    give = min(need, sum(spare))
    if give <= 0:
        return out
    left = give
    others = [i for i in range(len(out)) if i != photo and spare[i]]
    for n, i in enumerate(others):
        take = left if n == len(others) - 1 else min(left, round(give * spare[i] / sum(spare)))
        out[i] -= take
        left -= take
    out[photo] += give
    return out


class PhotoFirstSplitter(QSplitter):
    """A horizontal splitter whose middle pane (the photo) gets at least half the room when the others can give
    way: checked whenever the panes' width changes (the window resized, a saved layout restored in a window of
    another size). Sizes the user chose (a drag, or restored at the width they were chosen at) are kept."""

    def __init__(self, orientation: Qt.Orientation, parent: QWidget | None = None) -> None:
        super().__init__(orientation, parent)
        self._chosen_at: int | None = None  # the panes' width when the user last chose their sizes
        self.splitterMoved.connect(self._chosen)

    def _chosen(self, *_args: object) -> None:
        self._chosen_at = sum(self.sizes())

    def restoreState(self, state: QByteArray | bytes | bytearray | memoryview) -> bool:  # noqa: N802
        restored = super().restoreState(state)
        sizes = saved_sizes(bytes(state.data()) if isinstance(state, QByteArray) else bytes(state))
        # laid out at the width they were saved at, they are kept; in a window of another width, rebalanced
        self._chosen_at = sum(sizes) if restored and sizes else None
        return restored

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._chosen_at is None or abs(sum(self.sizes()) - self._chosen_at) > 2:
            self.rebalance()

    def rebalance(self) -> None:
        sizes = self.sizes()
        if len(sizes) != 3 or not sum(sizes):
            return
        minimums = [minimum_width(self.widget(i)) for i in range(3)]
        preferred = [max(minimums[i], w.sizeHint().width()) if (w := self.widget(i)) is not None else 0
                     for i in range(3)]
        better = photo_first(sizes, minimums, preferred=preferred)
        if better != sizes:
            self.setSizes(better)


def minimum_width(widget: QWidget | None) -> int:
    if widget is None:
        return 0
    return max(widget.minimumWidth(), widget.minimumSizeHint().width(), 0)


def saved_sizes(state: bytes) -> list[int]:
    """The pane sizes a QSplitter.saveState holds (its format: the marker 0xff, the version, then the sizes as a
    count and big-endian 32-bit ints); [] when it does not read as one."""
    import struct

    if len(state) < 12:
        return []
    marker, _version, count = struct.unpack(">iii", state[:12])
    if marker != 0xFF or not 0 < count <= 16 or len(state) < 12 + 4 * count:
        return []
    return list(struct.unpack(f">{count}i", state[12:12 + 4 * count]))
