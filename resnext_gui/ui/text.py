"""How the window words numbers and shows text from files (names, labels, paths): always as plain text."""

from __future__ import annotations

import html
import re

from ..core.cam import METHOD_NAMES

NBSP, NB_HYPHEN = "\u00a0", "\u2011"
# a number and its unit ("16 %", "<1 %", "450 ms") stay on one line
_NUMBER_UNIT = re.compile(r"(?<=\d) (?=(?:%|‰|ms|s|px|KB|MB|GB)(?!\w))")
_METHODS = re.compile("|".join(re.escape(n) for n in sorted(METHOD_NAMES.values(), key=len, reverse=True) if "-" in n))


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


def unbroken(text: str) -> str:
    """``text`` for a label that wraps: never broken between a number and its unit ("to 16 %"), nor inside a CAM
    method's name ("Eigen-CAM"): non-breaking spaces and hyphens there. For display only; copy plain text."""
    text = _NUMBER_UNIT.sub(NBSP, text)
    return _METHODS.sub(lambda m: m.group(0).replace("-", NB_HYPHEN), text)


def plain(text: str) -> str:
    """What ``unbroken`` changed, back to ordinary spaces and hyphens (for text copied or compared)."""
    return text.replace(NBSP, " ").replace(NB_HYPHEN, "-")
