"""The weights file the user chose last, and the few before it (File → Recent Weights), kept in QSettings."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

KEEP = 5


class RecentWeights:
    """A short most-recent-first list of checkpoint paths; the first is used at start when nothing else is named."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def paths(self) -> list[str]:
        value = self.settings.value("recent_weights", [])
        items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
        return [str(p) for p in items if p][:KEEP]

    def remember(self, path: str) -> None:
        path = os.path.abspath(path)
        self.settings.setValue("recent_weights", [path] + [p for p in self.paths() if p != path][: KEEP - 1])

    def forget(self, path: str) -> None:
        self.settings.setValue("recent_weights", [p for p in self.paths() if p != path])

    def last(self) -> str | None:
        """The last checkpoint chosen, if it is still there."""
        for path in self.paths()[:1]:
            if os.path.isfile(path):
                return path
        return None
