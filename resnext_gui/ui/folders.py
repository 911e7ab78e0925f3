"""The folder each file dialog opens in: the one last used for that kind of file, remembered between sessions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QSettings

Kind = Literal["photos", "overlay", "export", "teach", "weights"]

# The settings key of each kind: photos (Open Photos, Open Folder), overlays (Save Overlay, into a folder too),
# exports, the class folders Teach learns from, and model files (Open Weights, Teach's Save…)
KEYS: dict[Kind, str] = {
    "photos": "last_folder",
    "overlay": "last_folder_overlay",
    "export": "last_folder_export",
    "teach": "last_folder_teach",
    "weights": "last_folder_weights",
}


class LastFolders:
    """``folder(kind)``: where that kind's dialog opens (the last folder used for it, else the photos' folder, else
    the home folder; one that is gone is skipped); ``remember(kind, path)`` after the dialog."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def _stored(self, kind: Kind) -> str | None:
        value = self.settings.value(KEYS[kind])
        return value if isinstance(value, str) and value and os.path.isdir(value) else None

    def folder(self, kind: Kind) -> str:
        return self._stored(kind) or self._stored("photos") or str(Path.home())

    def in_folder(self, kind: Kind, name: str) -> str:
        """A suggested file name in that kind's folder."""
        return str(Path(self.folder(kind)) / name)

    def remember(self, kind: Kind, path: str, is_folder: bool = False) -> None:
        """The folder of the file chosen (or the folder itself) is where that kind's dialog opens next."""
        if path:
            self.settings.setValue(KEYS[kind], path if is_folder else str(Path(path).parent))
