"""Where the app's own files are (icon, sample photo, bundled weights), in the source tree or a frozen build."""

from __future__ import annotations

import sys
from pathlib import Path


def assets_dirs() -> list[Path]:
    """Where the app's assets are: the frozen build's data folder first, then the source tree's assets/."""
    dirs = []
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        dirs.append(Path(frozen_root) / "assets")
    # In the frozen app this module's own place is inside the data folder too (_internal/resnext_gui/core):
    # the same folder, named once
    source = Path(__file__).resolve().parents[2] / "assets"
    if not any(_same(source, d) for d in dirs):
        dirs.append(source)
    return dirs


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def asset(name: str) -> Path | None:
    """A bundled asset file (icon, sample photo), or None when missing."""
    for folder in assets_dirs():
        if (folder / name).is_file():
            return folder / name
    return None
