"""The window's three panes side by side (gallery, photo, controls): the photo gets the most room at any window
size, the gallery and the controls giving up width, down to their minimum, before it does."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QSplitter, QWidget

PHOTO_SHARE = 0.5  # of the panes' width, at least, for the photo whenever the side panes can give it


def photo_first(sizes: Sequence[int], minimums: Sequence[int], photo: int = 1, share: float = PHOTO_SHARE) -> list[int]:
    """``sizes`` with the pane ``photo`` given at least ``share`` of their sum, taken from the other panes in
    proportion to what each has above its minimum; unchanged when the photo has that already (a width the user
    chose is kept while there is room for it)."""
    out = list(sizes)
    total = sum(out)
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
    """A horizontal splitter whose middle pane (the photo) is never the narrowest when the others could give way:
    checked whenever the splitter is resized (the window, a saved layout restored on a smaller screen)."""

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.rebalance()

    def rebalance(self) -> None:
        sizes = self.sizes()
        if len(sizes) != 3 or not sum(sizes):
            return
        minimums = [minimum_width(self.widget(i)) for i in range(3)]
        better = photo_first(sizes, minimums)
        if better != sizes:
            self.setSizes(better)


def minimum_width(widget: QWidget | None) -> int:
    if widget is None:
        return 0
    return max(widget.minimumWidth(), widget.minimumSizeHint().width(), 0)
