"""Text under thumbnails, measured with the fonts that draw it: a CJK name or an emoji is drawn from a fallback
font taller than the widget's own, so a line is as tall as what it holds, never the main font's height."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QTextLayout, QTextOption

# What a file name or a label may hold that a fallback font draws: accented Latin, CJK, emoji (scripts that need
# shaping are left out: Qt warns when no installed font can shape them). A cell is at least as tall as two lines
# of it, so a gallery of such names keeps one cell size; a caption taller still is measured when drawn.
PROBE = "Ág 朝 写真 ☕ 🙂"


def line_height(font: QFont, text: str) -> int:
    """Pixels one line of ``text`` takes, drawn in ``font`` with its fallback fonts (at least the font's own)."""
    own = QFontMetrics(font).height()
    if not text:
        return own
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.NoWrap)
    layout.setTextOption(option)
    layout.beginLayout()
    line = layout.createLine()
    height = 0.0
    if line.isValid():
        line.setLineWidth(1e6)  # all of it on the one line: its height is that of the tallest font it uses
        height = line.height()
    layout.endLayout()
    return max(own, math.ceil(height))


def probe_height(font: QFont) -> int:
    """The height of one caption line of any script the installed fonts draw (see PROBE)."""
    return line_height(font, PROBE)


def wrapped(font: QFont, text: str, width: int, max_lines: int) -> list[str]:
    """``text`` broken at word boundaries into lines of at most ``width`` pixels; a word longer than a line is
    broken where it must. More than ``max_lines`` lines: the last one is elided at its end."""
    layout = QTextLayout(text, font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout.setTextOption(option)
    layout.beginLayout()
    lines: list[str] = []
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        lines.append(text[line.textStart():line.textStart() + line.textLength()].strip())
    layout.endLayout()
    if len(lines) > max_lines:
        rest = " ".join(lines[max_lines - 1:])
        lines = lines[:max_lines - 1] + [QFontMetrics(font).elidedText(rest, Qt.TextElideMode.ElideRight, width)]
    return lines or [""]
