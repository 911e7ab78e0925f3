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


def xdg_folder(variable: str, *default: str) -> Path:
    """An XDG base folder: ``$variable`` when it is an absolute path (the spec says to ignore a relative one),
    else ``~/default``."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home().joinpath(*default)


def _user_folder(xdg: tuple[str, ...], windows: tuple[str, ...], mac: tuple[str, ...]) -> Path:
    """This app's folder of one kind: XDG on Linux (``xdg``: the variable and its default under home), the
    platform's own elsewhere (``windows``: the variable and its default under home; ``mac``: under home)."""
    if sys.platform == "win32":
        base = Path(os.environ.get(windows[0]) or Path.home().joinpath(*windows[1:]))
    elif sys.platform == "darwin":
        base = Path.home().joinpath(*mac)
    else:
        base = xdg_folder(*xdg)
    return base / "resnext-gui"


def cache_root() -> Path:
    """The user's cache folder for this app (``~/.cache/resnext-gui`` on Linux)."""
    return _user_folder(("XDG_CACHE_HOME", ".cache"), ("LOCALAPPDATA", "AppData", "Local"), ("Library", "Caches"))


def data_root() -> Path:
    """The user's data folder for this app (``~/.local/share/resnext-gui`` on Linux): what is kept, not cached."""
    return _user_folder(("XDG_DATA_HOME", ".local", "share"), ("APPDATA", "AppData", "Roaming"),
                        ("Library", "Application Support"))


def state_root() -> Path:
    """The user's state folder for this app (``~/.local/state/resnext-gui`` on Linux): its log."""
    return _user_folder(("XDG_STATE_HOME", ".local", "state"), ("LOCALAPPDATA", "AppData", "Local"),
                        ("Library", "Logs"))
