"""What in the Qt installation would wreck the app: a binding that loses references to None or True (PySide6
6.12.0 on CPython < 3.12, refused before it can crash the app), and a system without fonts (said on stderr)."""

from __future__ import annotations

import sys

BAD_RELEASES = ("6.12.0",)
_RESTORED: list[object] = []  # references handed back after a check on a leaking binding
ADVICE = "Install another release: pip install 'PySide6-Essentials!=6.12.0' (6.11.3 is known to work)."


def lost_references(calls: int = 200) -> dict[str, int]:
    """Make ``calls`` Qt calls that return nothing and ``calls`` signal emits; how many references to
    None and True went missing meanwhile (0 and 0 on a sound binding)."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(calls):
        probe.setObjectName("probe")
    for _ in range(calls):
        probe.ping.emit()
    lost = {"None": none_before - sys.getrefcount(None), "True": true_before - sys.getrefcount(True)}
    # Give back what a leaking binding took, so that this check itself can't end the process.
    _RESTORED.extend([None] * max(0, lost["None"]) + [True] * max(0, lost["True"]))
    return lost


def binding_problem(calls: int = 200) -> str | None:
    """A plain sentence when the installed binding is one that would crash the app later, else None."""
    import PySide6

    lost = lost_references(calls)
    if max(lost.values()) < calls // 2:
        return None
    return (f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} loses a reference to None on "
            f"every Qt call ({lost['None']} of {calls} here) and would crash this app within minutes. {ADVICE}")


FONT_ADVICE = "Install a font package: fonts-dejavu-core (Debian, Ubuntu), dejavu-sans-fonts (Fedora), ttf-dejavu (Arch)."


def font_problem() -> str | None:
    """A plain sentence when no installed font can draw text (the window would show empty boxes), else None.

    Needs a QGuiApplication. Qt says nothing itself when fontconfig finds no fonts at all."""
    from PySide6.QtGui import QFontMetrics, QGuiApplication

    if QFontMetrics(QGuiApplication.font()).inFont("a"):
        return None
    return f"no fonts found on this system: the window's text cannot be drawn and shows as empty boxes. {FONT_ADVICE}"
