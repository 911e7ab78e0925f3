"""Files the app writes: whole or not at all (a temporary file renamed into place), and the user's cache folder."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(target: Path, text: bool = False, shared: bool = False, keep_mode: bool = False) -> Iterator[IO[Any]]:
    """Write ``target`` through a temporary file in its folder, renamed over it only when the block succeeds:
    a failure (full disk, an exception, Ctrl+C) leaves any earlier file as it was and no temporary behind.
    ``shared``: permissions as any program would create the file (mkstemp makes it private).
    ``keep_mode``: an existing regular file's permissions are kept (a private 0600 file stays private)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with (os.fdopen(fd, "w", newline="", encoding="utf-8") if text else os.fdopen(fd, "wb")) as fh:
            yield fh
        old = _regular_mode(target) if keep_mode else None
        if old is not None:
            os.chmod(tmp, old)
        elif shared:
            _share(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _regular_mode(path: Path) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: "a named pipe", "a character device"..."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a plain file"


class NotRegularFile(OSError):
    """A path that names a pipe, a device, a socket or a folder where a regular file was expected."""


def refuse_special(target: str | os.PathLike[str]) -> None:
    """NotRegularFile when ``target`` exists and is not a regular file (a folder, a named pipe, a device), also
    through a link: a file is written only as a new file or over an ordinary one (atomic_file then replaces
    the name itself, never writing through a link into whatever it points at)."""
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return  # nothing there yet (or a dangling link, which the rename replaces)
    if not stat.S_ISREG(mode):
        raise NotRegularFile(f"it is {file_kind(mode)}, not a regular file")


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file (after following links), else NotRegularFile.

    Opened non-blocking, so a named pipe never waits for a writer, and checked with fstat on what was
    opened, so a file swapped for a pipe or a link to /dev/zero since any earlier look is still refused.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"it is {file_kind(mode)}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _share(path: str | os.PathLike[str]) -> None:
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
