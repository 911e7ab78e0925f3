"""The top-5 panel: one clickable row per class with its label, a probability bar and the percentage; under them
a note and the faithfulness score of the map shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QAbstractButton, QButtonGroup, QLabel, QSizePolicy, QStyle, QStyleOptionFocusRect, QVBoxLayout, QWidget

from .text import plain_tooltip, unbroken

if TYPE_CHECKING:
    from ..core.prediction import TopClass


def _text_line() -> QLabel:
    """A wrapped, selectable plain-text label of a fixed height (set by the panel), as wide as the panel."""
    label = QLabel("")
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    return label


class ClassRow(QAbstractButton):
    """A checkable row; the checked one is the class whose heatmap is shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCheckable(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        policy = self.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # the controls below never move with the number of classes
        policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
        self.setSizePolicy(policy)
        self.label, self.prob, self.rank = "", 0.0, 0

    def set_class(self, rank: int, label: str, prob: float) -> None:
        self.rank, self.label, self.prob = rank, label, prob
        self.setToolTip(plain_tooltip(f"#{rank}: {label} — {prob:.2%}. Click to see where the network looked for it."))
        self.setAccessibleName(f"{label} {prob:.1%}")
        self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        delta = {Qt.Key.Key_Left: -1, Qt.Key.Key_Up: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: 1}.get(Qt.Key(event.key()))
        panel = self.parent()
        if delta is not None and isinstance(panel, Top5Panel):
            panel.step(self, delta)
        else:
            super().keyPressEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(240, self.fontMetrics().height() * 2 + 14)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        pal = self.palette()
        r = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        if self.isChecked():
            p.fillRect(r, pal.color(QPalette.ColorRole.Highlight).lighter(170) if pal.color(QPalette.ColorRole.Window).lightness() > 128 else pal.color(QPalette.ColorRole.Highlight).darker(160))
        elif self.underMouse():
            p.fillRect(r, pal.color(QPalette.ColorRole.AlternateBase))
        fh = self.fontMetrics().height()
        p.setPen(pal.color(QPalette.ColorRole.Text))
        text_rect = QRectF(r.x() + 8, r.y() + 4, r.width() - 70, fh)
        font = p.font()
        font.setBold(self.isChecked())
        p.setFont(font)
        p.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   self.fontMetrics().elidedText(f"{self.rank}. {self.label}", Qt.TextElideMode.ElideRight, int(text_rect.width())))
        p.drawText(QRectF(r.right() - 66, r.y() + 4, 60, fh), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{self.prob * 100:.1f}%")
        bar = QRectF(r.x() + 8, r.y() + fh + 8, r.width() - 16, 5)
        p.fillRect(bar, pal.color(QPalette.ColorRole.Mid))
        p.fillRect(QRectF(bar.x(), bar.y(), bar.width() * max(0.0, min(1.0, self.prob)), bar.height()), pal.color(QPalette.ColorRole.Highlight))
        if self.hasFocus():
            opt = QStyleOptionFocusRect()
            opt.initFrom(self)
            opt.rect = self.rect().adjusted(1, 1, -1, -1)
            self.style().drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, opt, p, self)


MESSAGE_LINES = 3  # the note under the classes has a fixed height, so nothing below it moves
# The heading ("Top 5 · Grad-CAM++ (14×14)") wraps onto a second line in a narrow panel (a 990-px
# window, a HiDPI scale) rather than run off its edge; it always has room for two, so the rows don't move with it
# (a third line only where a large font needs one).
TITLE_LINES = 2
SCORE_LINES = 5  # and so has the faithfulness score of the map shown


class Top5Panel(QWidget):
    """The title, five class rows and a note, at one fixed height whatever the photo shows."""

    classChosen = Signal(int)  # rank, 1-based

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title = QLabel("Top 5")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.title.setWordWrap(True)
        self.title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
        layout.addWidget(self.title)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.rows: list[ClassRow] = []
        for i in range(5):
            row = ClassRow(self)
            self.group.addButton(row, i + 1)
            layout.addWidget(row)
            self.rows.append(row)
        self.message = _text_line()
        layout.addWidget(self.message)
        self.score = _text_line()
        self.score.setAccessibleName("Faithfulness of the map shown")
        layout.addWidget(self.score)
        self._fix_heights()
        self.group.idClicked.connect(self.classChosen)
        self.set_top([])

    def _fix_heights(self) -> None:
        self.title.setMinimumHeight(self.title.fontMetrics().lineSpacing() * TITLE_LINES + 2)
        self.message.setFixedHeight(self.message.fontMetrics().lineSpacing() * MESSAGE_LINES + 4)
        self.score.setFixedHeight(self.score.fontMetrics().lineSpacing() * SCORE_LINES + 4)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.FontChange:  # a larger font: the fixed heights grow with it
            self._fix_heights()
        super().changeEvent(event)

    def set_top(self, top: list[TopClass], selected: int = 1, message: str = "") -> None:
        """``top``: the core's TopClass objects, best first."""
        for i, row in enumerate(self.rows):
            if i < len(top):
                row.set_class(top[i].rank, top[i].label, top[i].prob)
                row.show()
            else:
                row.hide()
        if top:
            self.rows[min(selected, len(top)) - 1].setChecked(True)
        self.message.setText(unbroken(message))
        self.message.setToolTip(plain_tooltip(message) if message else "")

    def set_title(self, text: str) -> None:
        """The heading: "Top 5 · Eigen-CAM (7×7)" (wrapped where narrow, never inside the method's name)."""
        self.title.setText(unbroken(text))

    def set_score(self, text: str, tip: str = "") -> None:
        """The faithfulness score of the map shown, in words ("" while there is none), wrapped between words only:
        never "16 / %" nor "Eigen- / CAM"."""
        self.score.setText(unbroken(text))
        self.score.setToolTip(plain_tooltip(tip) if tip else "")

    def step(self, current: ClassRow, delta: int) -> None:
        """Arrow keys move between the classes (and show that class's heatmap)."""
        shown = [r for r in self.rows if r.isVisible()]
        if current in shown:
            row = shown[max(0, min(len(shown) - 1, shown.index(current) + delta))]
            row.setFocus()
            self.select(shown.index(row) + 1)

    def select(self, rank: int) -> None:
        if 1 <= rank <= 5 and self.rows[rank - 1].isVisible():
            self.rows[rank - 1].setChecked(True)
            self.classChosen.emit(rank)
