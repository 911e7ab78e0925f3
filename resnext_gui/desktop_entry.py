"""`--install-desktop-entry`: a .desktop file and icon in the user's XDG folders, for menus and "Open with"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

APP_ID = "resnext-gui"
# The photo types the app opens (core/paths.py IMAGE_SUFFIXES), as MIME types.
MIME_TYPES = ("image/jpeg", "image/png", "image/bmp", "image/gif", "image/webp", "image/tiff")


def data_home() -> Path:
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def desktop_file() -> Path:
    return data_home() / "applications" / f"{APP_ID}.desktop"


def icon_file() -> Path:
    return data_home() / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png"


def launch_command() -> list[str]:
    """How a menu starts this installation: the standalone executable, the installed script, or this Python."""
    if getattr(sys, "frozen", False):
        exe = Path(os.path.abspath(sys.executable))
        # The standalone app's `resnext-gui` is a script in front of PyInstaller's `resnext-gui.bin` (it checks
        # the system's glibc first, packaging/resnext-gui.sh): menus start the script.
        script = exe.with_name(APP_ID)
        return [str(script if exe.name == f"{APP_ID}.bin" and script.is_file() else exe)]
    script = shutil.which(APP_ID)
    if script:
        return [os.path.abspath(script)]
    return [os.path.abspath(sys.executable), "-m", "resnext_gui"]


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
    exec_line = " ".join(_exec_quote(a) for a in command) + " %F"
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


def install() -> list[Path]:
    """Write the icon and the .desktop file (replacing earlier ones); the paths written."""
    from .core.resources import asset

    icon = asset("icon.png")
    if icon is None:
        raise FileNotFoundError("the app's icon (assets/icon.png) is missing from this installation")
    written = []
    for target, write in ((icon_file(), lambda p: shutil.copyfile(icon, p)),
                          (desktop_file(), lambda p: p.write_text(entry_text(launch_command()), encoding="utf-8"))):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        write(tmp)
        os.replace(tmp, target)
        written.append(target)
    _refresh_caches()
    return written


def uninstall() -> list[Path]:
    """Remove what ``install`` wrote; the paths removed."""
    removed = []
    for target in (desktop_file(), icon_file()):
        if target.is_file() or target.is_symlink():
            target.unlink()
            removed.append(target)
    _refresh_caches()
    return removed


def main(action: str) -> int:
    try:
        if action == "install":
            for path in install():
                print(f"wrote {path}")
            print(f"ResNeXt Classifier is in the applications menu and offered for {', '.join(MIME_TYPES)} files.")
        else:
            removed = uninstall()
            print("\n".join(f"removed {p}" for p in removed) if removed else "no desktop entry was installed")
    except OSError as exc:
        print(f"resnext-gui: cannot {action} the desktop entry: {exc}", file=sys.stderr)
        return 1
    return 0

