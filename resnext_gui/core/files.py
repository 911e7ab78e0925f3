"""Files the app writes: whole or not at all (a temporary file renamed into place), and the user's cache folder."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(target: Path, text: bool = False, shared: bool = False) -> Iterator[IO[Any]]:
    """Write ``target`` through a temporary file in its folder, renamed over it only when the block succeeds:
    a failure (full disk, an exception, Ctrl+C) leaves any earlier file as it was and no temporary behind.
    ``shared``: permissions as any program would create the file (mkstemp makes it private)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with (os.fdopen(fd, "w", newline="", encoding="utf-8") if text else os.fdopen(fd, "wb")) as fh:
            yield fh
        if shared:
            share(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def share(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the permissions any program's new file gets under the user's umask (0644 under 022)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def cache_root() -> Path:
    """The user's cache folder for this app (XDG on Linux, the platform's own elsewhere)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")  # the XDG spec: a relative path is to be ignored
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "resnext-gui"
