"""Before Qt starts: can a platform plugin (xcb or wayland) load? If not, name the missing library and its package."""

from __future__ import annotations

import ctypes
import datetime
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

EXIT_NO_PLATFORM = 4

# soname -> (Debian/Ubuntu package, Fedora/RHEL package). Covers what the xcb and wayland plugins and the Qt
# libraries behind them need; the standalone app bundles the ones beyond the desktop baseline.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
    "libz.so.1": ("zlib1g", "zlib"),
    "libstdc++.so.6": ("libstdc++6", "libstdc++"),
}
_XCB_EXTENSION = re.compile(r"libxcb-([a-z0-9]+)\.so\.\d+$")  # libxcb-randr.so.0 etc.: all in libxcb on Fedora


def package_of(soname: str) -> tuple[str, str] | None:
    """(Debian/Ubuntu, Fedora) package names that provide ``soname``, when known."""
    if soname in PACKAGES:
        return PACKAGES[soname]
    m = _XCB_EXTENSION.match(soname)
    if m:
        return (f"libxcb-{m.group(1)}0" if soname.endswith(".so.0") else f"libxcb-{m.group(1)}1", "libxcb")
    return None


@dataclass
class PluginCheck:
    """Whether one platform plugin loads here, and if not, what is missing."""

    platform: str
    plugin: Path | None
    error: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.plugin is not None and self.error is None


PLUGIN_FILES = {"xcb": ("libqxcb.so",), "wayland": ("libqwayland.so", "libqwayland-generic.so", "libqwayland-egl.so")}


def plugins_dir() -> Path | None:
    """Qt's platform plugin folder, found without importing PySide6 (in the source tree or the frozen build)."""
    spec = importlib.util.find_spec("PySide6")
    roots = [Path(spec.origin).parent] if spec and spec.origin else []
    if getattr(sys, "_MEIPASS", None):
        roots.insert(0, Path(sys._MEIPASS) / "PySide6")
    for root in roots:
        folder = root / "Qt" / "plugins" / "platforms"
        if folder.is_dir():
            return folder
    return None


def _system_env() -> dict[str, str]:
    """The environment for the system's own programs: without the frozen app's library path."""
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        orig = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if orig:
            env["LD_LIBRARY_PATH"] = orig
        else:
            env.pop("LD_LIBRARY_PATH", None)
    return env


def missing_libraries(path: Path) -> list[str]:
    """Every library ``path`` needs that the dynamic loader can't find (ldd's "not found"), in ldd's order."""
    ldd = shutil.which("ldd") or ("/usr/bin/ldd" if os.path.exists("/usr/bin/ldd") else None)
    if not ldd:
        return []
    try:
        out = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(dict.fromkeys(re.findall(r"^\s*(\S+)\s+=>\s+not found", out, re.M)))  # once each, in order


def check_plugin(platform: str, folder: Path | None = None) -> PluginCheck:
    """Load ``platform``'s plugin the way Qt will (dlopen); on failure, list every missing library."""
    folder = folder or plugins_dir()
    names = PLUGIN_FILES.get(platform, ())
    plugin = next((folder / n for n in names if folder and (folder / n).is_file()), None)
    if plugin is None:
        return PluginCheck(platform, None, f"Qt's {platform} platform plugin is not installed")
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        missing = missing_libraries(plugin)
        if not missing:
            m = re.search(r"(\S+\.so[.\d]*): cannot open shared object file", str(exc))
            missing = [m.group(1)] if m else []
        return PluginCheck(platform, plugin, str(exc), missing)
    return PluginCheck(platform, plugin)


def sessions() -> dict[str, bool]:
    """Which display servers this process could talk to."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    wayland = os.environ.get("WAYLAND_DISPLAY") or ""
    wayland_ok = bool(wayland) and (os.path.exists(wayland) or os.path.exists(os.path.join(runtime, wayland)))
    return {"xcb": bool(os.environ.get("DISPLAY")), "wayland": wayland_ok}


def wanted_platforms() -> list[str] | None:
    """The platforms Qt will try, in order; None when it is one this check is not about (offscreen, vnc...)."""
    requested = os.environ.get("QT_QPA_PLATFORM", "").strip()
    if requested:
        names = [p.split(":", 1)[0].strip() for p in requested.split(";") if p.strip()]
        names = ["wayland" if n.startswith("wayland") else n for n in names]
        return names if names and all(n in PLUGIN_FILES for n in names) else None
    live = sessions()
    if os.environ.get("XDG_SESSION_TYPE") == "wayland" and live["wayland"]:
        return ["wayland", "xcb"]
    return ["xcb", "wayland"] if live["wayland"] else ["xcb"]


def explain(check: PluginCheck) -> str:
    """A paragraph saying what is missing and which package to install."""
    if not check.missing:
        return f"Qt's {check.platform} platform plugin cannot load: {check.error}"
    lines = [f"Qt's {check.platform} platform plugin cannot load; missing on this system:"]
    debian, fedora = [], []
    for lib in check.missing:
        pkgs = package_of(lib)
        if pkgs:
            lines.append(f"  {lib}  (Debian/Ubuntu package {pkgs[0]}, Fedora/RHEL package {pkgs[1]})")
            debian.append(pkgs[0]) if pkgs[0] not in debian else None
            fedora.append(pkgs[1]) if pkgs[1] not in fedora else None
        else:
            lines.append(f"  {lib}")
    if debian:
        lines.append(f"Install with:  sudo apt install {' '.join(debian)}   (Fedora/RHEL: sudo dnf install {' '.join(fedora)})")
    return "\n".join(lines)


def log_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "resnext-gui" / "startup-error.log"


def _has_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (ValueError, OSError):
        return False


def tell_user(message: str, dialog: bool = True) -> None:
    """stderr always; without a terminal also a log file (named in the message) and, when ``dialog``, a
    dialog or notification."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    if _has_terminal():
        return
    log = log_path()
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')}\n{message}\n\n")
        shown = f"{message}\n\n(This message is also in {log}.)"
    except OSError:
        shown = message
    if not dialog:
        return
    title = "ResNeXt Classifier cannot start"
    for tool, args in (("zenity", ["--error", "--no-markup", f"--title={title}", f"--text={shown}"]),
                       ("kdialog", ["--title", title, "--error", shown]),
                       ("notify-send", ["--urgency=critical", "--app-name=resnext-gui", title, shown])):
        exe = shutil.which(tool, path=_system_env().get("PATH"))
        if exe:
            try:  # the app has nothing else to do: wait until the user has closed the dialog
                subprocess.run([exe, *args], env=_system_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                return
            except OSError:
                continue


def ensure_platform() -> int | None:
    """Check the platform Qt will use before it starts; switch to the other one if only that can work.

    Returns None when Qt may start (possibly with QT_QPA_PLATFORM set to the working platform), or an exit
    status after telling the user what is missing.
    """
    if not sys.platform.startswith("linux"):
        return None
    wanted = wanted_platforms()
    if wanted is None:
        return None
    folder = plugins_dir()
    if folder is None:
        return None  # not a layout this check understands: let Qt say what it says
    live = sessions()
    failures: list[PluginCheck] = []
    for i, platform in enumerate(wanted):
        if i > 0 and not live[platform]:
            continue
        check = check_plugin(platform, folder)
        if check.ok:
            if failures:  # the first choice can't load: say why, then use this one
                os.environ["QT_QPA_PLATFORM"] = platform
                tell_user(explain(failures[0]) + f"\nUsing the {platform} platform instead.", dialog=False)
            return None
        failures.append(check)
    other = {"xcb": "wayland", "wayland": "xcb"}
    if not any(live.values()):
        hint = "No display found (DISPLAY and WAYLAND_DISPLAY are unset): run it on a desktop session."
    elif len(failures) == 1 and other.get(wanted[0]) and not live.get(other[wanted[0]]):
        hint = f"(No {other[wanted[0]]} session to try instead.)"
    else:
        hint = ""
    tell_user("\n".join(explain(c) for c in failures) + ("\n" + hint if hint else ""))
    return EXIT_NO_PLATFORM
