"""Before Qt starts: is there a display to open a window on, and can its platform plugin (xcb or wayland) load?
If not, say so plainly (no display, or the missing library and its package) instead of letting Qt abort."""

from __future__ import annotations

import ctypes
import datetime
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

EXIT_NO_PLATFORM = 4  # a library Qt's platform plugin needs is missing
EXIT_NO_DISPLAY = 5  # no display server to talk to (none named, or the one named does not answer)
NO_DISPLAY_SET = ("no display found (neither DISPLAY nor WAYLAND_DISPLAY is set; "
                  "use `resnext-gui classify` for the command line)")

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
    bundle = getattr(sys, "_MEIPASS", None)  # the frozen app's own folder
    if bundle:
        roots.insert(0, Path(bundle) / "PySide6")
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


def wayland_socket() -> str | None:
    """The compositor's socket the Wayland client library will use (WAYLAND_DISPLAY, by default wayland-0,
    in XDG_RUNTIME_DIR unless it is a path), or None when it can't name one (no XDG_RUNTIME_DIR)."""
    name = os.environ.get("WAYLAND_DISPLAY") or "wayland-0"
    if os.path.isabs(name):
        return name
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    return os.path.join(runtime, name) if runtime else None


def sessions() -> dict[str, bool]:
    """Which display servers this process could talk to (named in the environment; Wayland's socket exists)."""
    socket_path = wayland_socket()
    wayland_ok = bool(os.environ.get("WAYLAND_DISPLAY")) and socket_path is not None and os.path.exists(socket_path)
    return {"xcb": bool(os.environ.get("DISPLAY")), "wayland": wayland_ok}


def x_server_problem(display: str, timeout: float = 5.0) -> str | None:
    """None when the X server ``display`` accepts a connection (made the way Qt makes it: libxcb, with the
    user's X authority), else why not."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return None  # then the plugin can't load either, and check_plugin names the library
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.restype = ctypes.c_int
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    result: list[int] = []

    def connect() -> None:
        conn = xcb.xcb_connect(display.encode(errors="surrogateescape"), None)
        result.append(xcb.xcb_connection_has_error(conn))
        xcb.xcb_disconnect(conn)

    attempt = threading.Thread(target=connect, name="x-server-check", daemon=True)  # a remote host may not answer
    attempt.start()
    attempt.join(timeout)
    if not result:
        return f"the X server {display} does not answer"
    if result[0] == 5:  # XCB_CONN_CLOSED_PARSE_ERR
        return f"DISPLAY={display} is not a display name"
    return f"cannot connect to X server {display}" if result[0] else None


def display_problem(platform: str) -> str | None:
    """None when ``platform``'s display server is there to talk to, else a short reason."""
    if platform == "wayland":
        socket_path = wayland_socket()
        if socket_path is None:
            return "XDG_RUNTIME_DIR is not set, so there is no Wayland compositor to find"
        return None if os.path.exists(socket_path) else f"no Wayland compositor at {socket_path}"
    display = os.environ.get("DISPLAY")
    return x_server_problem(display) if display else "DISPLAY is not set"


def requested_platforms() -> list[str] | None:
    """The platforms QT_QPA_PLATFORM names, in order ([] when it is unset); None when it names one this check
    is not about (offscreen, vnc...)."""
    requested = os.environ.get("QT_QPA_PLATFORM", "").strip()
    if not requested:
        return []
    names = [p.split(":", 1)[0].strip() for p in requested.split(";") if p.strip()]
    names = ["wayland" if n.startswith("wayland") else n for n in names]
    return names if names and all(n in PLUGIN_FILES for n in names) else None


def wanted_platforms() -> list[str] | None:
    """The platforms Qt will try, in order; None when it is one this check is not about (offscreen, vnc...)."""
    requested = requested_platforms()
    if requested != []:
        return requested
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
    from ..core.files import state_root

    return state_root() / "startup-error.log"


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


PLATFORM_NAMES = {"xcb": "X11", "wayland": "Wayland"}


def _named(platform: str) -> bool:
    """Whether the environment asks for ``platform``: its display variable is set, or QT_QPA_PLATFORM names it."""
    variable = {"xcb": "DISPLAY", "wayland": "WAYLAND_DISPLAY"}[platform]
    return bool(os.environ.get(variable)) or platform in (requested_platforms() or [])


def choose_display(wanted: list[str]) -> tuple[str | None, dict[str, str]]:
    """The first of ``wanted``, then the other platform, that the environment names and whose display server
    is there; and why each one named before it is not. (A display the environment does not name is never
    used: a compositor's socket in XDG_RUNTIME_DIR may belong to a desktop this login is not part of.)"""
    problems: dict[str, str] = {}
    for platform in wanted + [p for p in PLUGIN_FILES if p not in wanted]:
        if not _named(platform):
            continue
        problem = display_problem(platform)
        if problem is None:
            return platform, problems
        problems[platform] = problem
    return None, problems


def ensure_platform() -> int | None:
    """Check the display and the platform Qt will use before it starts; switch to the other platform if only
    that one can work.

    Returns None when Qt may start (possibly with QT_QPA_PLATFORM set to the working platform), or an exit
    status after telling the user what is wrong: EXIT_NO_DISPLAY or EXIT_NO_PLATFORM.
    """
    if not sys.platform.startswith("linux"):
        return None
    wanted = wanted_platforms()
    if wanted is None:
        return None
    folder = plugins_dir()
    if folder is None:
        return None  # not a layout this check understands: let Qt say what it says
    chosen, problems = choose_display(wanted)
    if chosen is None:  # nothing to open a window on: a missing plugin library would not matter yet
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            message = NO_DISPLAY_SET
        else:
            message = f"no display found ({'; '.join(problems.values())})"
        tell_user(f"resnext-gui: {message}", dialog=False)  # no display to show a dialog on
        return EXIT_NO_DISPLAY
    if problems:  # the display named first is not there, another one is: say so, then use that one
        os.environ["QT_QPA_PLATFORM"] = chosen
        where = os.environ.get("DISPLAY") if chosen == "xcb" else wayland_socket()
        tell_user(f"resnext-gui: {next(iter(problems.values()))}; using the {PLATFORM_NAMES[chosen]} display "
                  f"{where} instead.", dialog=False)
    candidates = [chosen] + [p for p in PLUGIN_FILES
                             if p != chosen and p not in problems and _named(p) and display_problem(p) is None]
    failures: list[PluginCheck] = []
    for platform in candidates:
        check = check_plugin(platform, folder)
        if check.ok:
            if failures:  # the first choice can't load: say why, then use this one
                os.environ["QT_QPA_PLATFORM"] = platform
                tell_user(explain(failures[0]) + f"\nUsing the {platform} platform instead.", dialog=False)
            return None
        failures.append(check)
    other = {"xcb": "wayland", "wayland": "xcb"}[chosen]
    hint = f"(No {other} session to try instead.)" if len(failures) == 1 else ""
    tell_user("\n".join(explain(c) for c in failures) + ("\n" + hint if hint else ""))
    return EXIT_NO_PLATFORM
