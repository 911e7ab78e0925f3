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


class OwnerNotKept(PermissionError):
    """The new file could not be given the owner and group of the file it was to replace."""


@contextmanager
def atomic_file(target: Path, text: bool = False, shared: bool = False, keep_mode: bool = False,
                keep_owner: bool = False) -> Iterator[IO[Any]]:
    """Write ``target`` through a temporary file in its folder, renamed over it only when the block succeeds:
    a failure (full disk, an exception, Ctrl+C) leaves any earlier file as it was and no temporary behind.
    ``shared``: permissions as any program would create the file (mkstemp makes it private).
    ``keep_mode``: an existing regular file's permissions are kept (a private 0600 file stays private).
    ``keep_owner``: an existing regular file's owner and group are kept too (OwnerNotKept when they can't be:
    check ``replace_problem`` first)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with (os.fdopen(fd, "w", newline="", encoding="utf-8") if text else os.fdopen(fd, "wb")) as fh:
            yield fh
        old = _regular_stat(target) if keep_mode or keep_owner else None
        if old is not None and keep_owner:
            _give_owner(tmp, old)
        if old is not None and keep_mode:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
        elif shared:
            _share(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _regular_stat(path: Path) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _give_owner(tmp: str, old: os.stat_result) -> None:
    new = os.stat(tmp)
    if (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid):
        return
    try:
        os.chown(tmp, old.st_uid, old.st_gid)
    except OSError as exc:
        raise OwnerNotKept(f"its owner and group ({_user_name(old.st_uid)}, group {old.st_gid}) could not be kept: "
                           f"{exc.strerror or exc}") from None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"user {uid}"


def replace_problem(path: str | os.PathLike[str], st: os.stat_result) -> str | None:
    """Why the existing file at ``path`` (``st``: its stat) must not be replaced by a new file renamed over it, as
    atomic_file does, in words; None when it may. Renaming needs only the folder to be writable, so the file's own
    protection is checked here, as an editor would: the user must be allowed to write the file itself, and the new
    file must end up with the same owner (the superuser can give it that; anyone else only keeps their own)."""
    effective = os.access in os.supports_effective_ids
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK | os.X_OK, effective_ids=effective):
        return f"its folder {folder} is not writable"
    if not os.access(path, os.W_OK, effective_ids=effective):
        return "you may not write it (it is read-only for you)"
    euid = os.geteuid() if hasattr(os, "geteuid") else st.st_uid
    if st.st_uid != euid and euid != 0:
        return f"it belongs to another user ({_user_name(st.st_uid)}), and a rewritten copy would belong to you"
    return None


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
