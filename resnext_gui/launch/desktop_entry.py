"""`--install-desktop-entry`: a .desktop file and icon in the user's XDG folders, for menus and "Open with"."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from ..core.files import atomic_file, open_regular, xdg_folder

APP_ID = "resnext-gui"
MARK = "X-ResNeXt-GUI-Generated=true"  # in every entry this app writes: uninstall removes only those
MAX_ENTRY_BYTES = 1 << 16  # read of an existing entry on uninstall
# The photo types the app opens (core/paths.py IMAGE_SUFFIXES), as MIME types.
MIME_TYPES = ("image/jpeg", "image/png", "image/bmp", "image/gif", "image/webp", "image/tiff")


def data_home() -> Path:
    return xdg_folder("XDG_DATA_HOME", ".local", "share")


def desktop_file() -> Path:
    return data_home() / "applications" / f"{APP_ID}.desktop"


def icon_file() -> Path:
    return data_home() / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png"


def launch_command() -> list[str]:
    """How a menu starts this installation: the standalone app's own executable, or this very Python with this
    package (``python -m resnext_gui``) -- never whichever `resnext-gui` comes first on PATH, which may be
    another installation or something planted in a folder on it."""
    exe = os.path.abspath(sys.executable)  # not resolved: a virtual environment's python is a link that must stay one
    if getattr(sys, "frozen", False):
        # The standalone app's `resnext-gui` is a script in front of PyInstaller's `resnext-gui.bin` (it checks
        # the system's glibc first, packaging/resnext-gui.sh): menus start the script.
        script = Path(exe).with_name(APP_ID)
        return [str(script if Path(exe).name == f"{APP_ID}.bin" and script.is_file() else exe)]
    return [exe, "-m", "resnext_gui"]


def _exec_quote(arg: str) -> str:
    """Quote one argument for a desktop entry's Exec key (the spec's rules: double quotes, escaped \\ " ` $, %%)."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def _value(text: str) -> str:
    """A desktop entry string value: backslash escapes for \\ and line breaks."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def entry_text(command: list[str]) -> str:
    """The desktop entry starting ``command`` with the photos opened (%F)."""
    run = command
    if "%" in command[0]:
        # GLib looks the program up as Exec= spells it, before turning %% back into %, and so would reject the
        # entry: a program whose path has a % is started through the shell, which gets its path as an argument.
        run = ["/bin/sh", "-c", 'exec "$0" "$@"', *command]
    exec_line = " ".join(_exec_quote(a) for a in run) + " %F"
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        "Name=ResNeXt Classifier",
        "GenericName=Image Classifier",
        "Comment=Top-5 ImageNet classes and Grad-CAM heatmaps for your photos",
        f"Exec={_value(exec_line)}",
        f"TryExec={_value(command[0])}",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Graphics;Viewer;",
        f"MimeType={';'.join(MIME_TYPES)};",
        "StartupNotify=true",
        f"StartupWMClass={APP_ID}",
        MARK,
        "",
    ])


def _refresh_caches() -> None:
    """Let menus and "Open with" see the change now, where the desktop's tools exist (best effort)."""
    env = dict(os.environ)
    if getattr(sys, "frozen", False):  # system tools must not load the bundle's libraries
        orig = env.pop("LD_LIBRARY_PATH_ORIG", None)
        env.pop("LD_LIBRARY_PATH", None)
        if orig:
            env["LD_LIBRARY_PATH"] = orig
    for tool, arg in (("update-desktop-database", desktop_file().parent),
                      ("gtk-update-icon-cache", data_home() / "icons" / "hicolor")):
        exe = shutil.which(tool)
        if exe and Path(arg).is_dir():
            try:
                subprocess.run([exe, "-q" if tool == "update-desktop-database" else "-qtf", str(arg)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
            except (OSError, subprocess.SubprocessError):
                pass


def _icon_bytes() -> bytes:
    from ..core.resources import asset

    icon = asset("icon.png")
    if icon is None:
        raise FileNotFoundError("the app's icon (assets/icon.png) is missing from this installation")
    return Path(icon).read_bytes()


def install() -> list[Path]:
    """Write the icon and the .desktop file (replacing earlier ones); the paths written.

    Each through a temporary file of a fresh random name in the target's folder, renamed into place: a file
    or link planted under a predictable name is never written through.
    """
    written = []
    for target, data in ((icon_file(), _icon_bytes()),
                         (desktop_file(), entry_text(launch_command()).encode("utf-8"))):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target, shared=True) as fh:
            fh.write(data)
        written.append(target)
    _refresh_caches()
    return written


def _read_small(path: Path) -> bytes | None:
    """A regular file's bytes (at most MAX_ENTRY_BYTES + 1), or None for a link, a pipe, a folder, unreadable."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        with open_regular(path) as fh:
            return fh.read(MAX_ENTRY_BYTES + 1)
    except OSError:
        return None


def uninstall() -> tuple[list[Path], list[str]]:
    """Remove what ``install`` wrote: the entry if it carries this app's mark, the icon if it is this app's.

    Anything else under those names (an entry made by hand, a link) is left as it is. Returns the paths
    removed and a note for each thing left.
    """
    removed: list[Path] = []
    notes: list[str] = []
    entry, icon = desktop_file(), icon_file()
    if entry.exists() or entry.is_symlink():
        text = _read_small(entry)
        if text is not None and MARK.encode() in text.splitlines():
            entry.unlink()
            removed.append(entry)
        else:
            notes.append(f"left {entry} as it is: this app did not write it (it lacks the line {MARK}); "
                         "delete it yourself if it is no longer wanted")
    if icon.exists() or icon.is_symlink():
        try:
            ours = _read_small(icon) == _icon_bytes()
        except OSError:
            ours = False
        if ours:
            icon.unlink()
            removed.append(icon)
        else:
            notes.append(f"left {icon} as it is: it is not the icon this app installs")
    _refresh_caches()
    return removed, notes


def main(action: str) -> int:
    try:
        if action == "install":
            for path in install():
                print(f"wrote {path}")
            print(f"ResNeXt Classifier is in the applications menu and offered for {', '.join(MIME_TYPES)} files.")
        else:
            removed, notes = uninstall()
            for note in notes:
                print(f"resnext-gui: {note}", file=sys.stderr)
            if removed:
                print("\n".join(f"removed {p}" for p in removed))
            elif not notes:
                print("no desktop entry was installed")
    except OSError as exc:
        print(f"resnext-gui: cannot {action} the desktop entry: {exc}", file=sys.stderr)
        return 1
    return 0

