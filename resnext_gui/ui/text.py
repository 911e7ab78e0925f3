"""How the window words numbers and shows text from files (names, labels, paths): always as plain text."""

from __future__ import annotations

import html


def percent(prob: float) -> str:
    return f"{prob:.0%}" if prob >= 0.095 else f"{prob:.1%}"


def sentence(text: str) -> str:
    """A message as a sentence: it ends with a full stop (or its own ``!``, ``?``, ``…``)."""
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?", "…")) else text + "."


def plain_tooltip(text: str) -> str:
    """A tooltip that shows ``text`` literally: Qt would otherwise render a name such as ``<img src=...>``."""
    return "<p style='white-space:pre-wrap'>" + html.escape(text).replace("\n", "<br>") + "</p>"


def plural(n: int, one: str, many: str | None = None) -> str:
    """ "1 photo", "3 photos" (``many`` where adding an "s" is not the English plural: "photos are")."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
