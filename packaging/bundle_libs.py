"""Which shared libraries the Linux bundle carries and which it leaves to the system (used by build.spec)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# The desktop baseline the bundle may assume (Debian/Ubuntu package names): what every Linux desktop has.
DESKTOP_BASELINE = ("libgl1", "libegl1", "libfontconfig1", "a font", "libxkbcommon0", "libdbus-1-3", "libxcb1", "libx11-6")

# Libraries taken from the system even when the build machine has them: (name prefix, reason). A copy from the
# build machine either raises the glibc floor, or shadows the system's own copy that other system libraries
# loaded into the process (GL/EGL drivers, fontconfig, input methods) were built against.
FROM_SYSTEM = (
    ("libstdc++.so", "the build machine's copy needs glibc 2.36; every system has one (apt, dnf, Mesa need it); "
                     "the bundle needs GLIBCXX_3.4.29, i.e. GCC 11's runtime or newer"),
    ("libgcc_s.so", "part of the C/C++ runtime, always present; paired with the system's libstdc++"),
    ("libexpat.so", "the build machine's copy needs glibc 2.36; fontconfig (baseline) depends on the system's"),
    ("libX11.so", "baseline (libx11-6); the system's GL library uses the system's Xlib"),
    ("libXau.so", "baseline: comes with libxcb1"),
    ("libXdmcp.so", "baseline: comes with libxcb1"),
    ("libbsd.so", "only needed by the build machine's libXdmcp, which is not bundled"),
    ("libmd.so", "only needed by libbsd"),
    ("libxkbcommon.so", "baseline (libxkbcommon0); reads the system's keyboard data, keep them in step"),
    ("libfontconfig.so", "baseline (libfontconfig1); must match the system's font configuration files"),
    ("libfreetype.so", "comes with fontconfig (baseline); a second copy would shadow the system's"),
    ("libpng16.so", "only needed by freetype and the GTK stack, both from the system"),
    ("libbrotlicommon.so", "only needed by the system's freetype"), ("libbrotlidec.so", "only needed by freetype"),
    ("libdbus-1.so", "baseline (libdbus-1-3); talks to the system's bus daemon"),
    ("libsystemd.so", "only needed by the build machine's libdbus, which is not bundled"),
    ("libgcrypt.so", "only needed by libsystemd"), ("libgpg-error.so", "only needed by libgcrypt"),
    ("liblz4.so", "only needed by libsystemd"), ("libcap.so", "only needed by libsystemd"),
    ("libz.so", "zlib is on every system (required in Debian/Ubuntu, Fedora, Arch, openSUSE); stable ABI"),
    ("libzstd.so", "on every system (dpkg, rpm and systemd need it); Mesa's LLVM uses the system's copy"),
    ("libwayland-client.so", "a Wayland session's own client library; Mesa's EGL (baseline libegl1) depends on it "
                             "and must share one copy with Qt"),
    # The GTK stack: GTK comes from the system when at all; a partial copy next to it breaks it. The bundle
    # does not ship Qt's GTK theme plugin, so nothing in the process loads these.
    ("libgtk-3.so", "GTK stack (not used: Qt's GTK3 theme plugin is left out)"),
    ("libgdk-3.so", "GTK stack"), ("libgdk_pixbuf", "GTK stack"), ("libatk", "GTK stack"), ("libatspi", "GTK stack"),
    ("libcairo", "GTK stack"), ("libpango", "GTK stack"), ("libharfbuzz.so", "GTK stack"), ("libfribidi", "GTK stack"),
    ("libthai", "GTK stack"), ("libdatrie", "GTK stack"), ("libgraphite2", "GTK stack"), ("libpixman", "GTK stack"),
    ("libepoxy", "GTK stack"), ("libXcomposite", "GTK stack"), ("libXcursor", "GTK stack"), ("libXdamage", "GTK stack"),
    ("libXext", "GTK stack"), ("libXfixes", "GTK stack"), ("libXi.so", "GTK stack"), ("libXinerama", "GTK stack"),
    ("libXrandr", "GTK stack"), ("libXrender", "GTK stack"), ("libgio-2.0", "GTK stack (Qt needs only glib)"),
    ("libgobject-2.0", "GTK stack"), ("libgmodule-2.0", "GTK stack"), ("libmount", "only needed by gio"),
    ("libblkid", "only needed by libmount"), ("libselinux", "only needed by gio"),
)

# Bundled although the build machine's system provides them (beyond the baseline, glibc <= 2.35, and nothing
# else in the process has its own copy): what Qt's xcb and wayland platform plugins need.
PLATFORM_LIBS = (
    "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-util.so.1", "libxcb-image.so.0", "libxcb-keysyms.so.1",
    "libxcb-randr.so.0", "libxcb-render-util.so.0", "libxcb-render.so.0", "libxcb-shape.so.0", "libxcb-shm.so.0",
    "libxcb-sync.so.1", "libxcb-xfixes.so.0", "libxcb-xkb.so.1", "libxcb-glx.so.0", "libxkbcommon-x11.so.0",
    "libX11-xcb.so.1", "libglib-2.0.so.0", "libgthread-2.0.so.0", "libpcre2-8.so.0",
    # PyInstaller leaves these two to a Wayland system; a minimal system with Mesa has libwayland-client only.
    "libwayland-cursor.so.0", "libwayland-egl.so.1",
)
# Also bundled from the build machine, for Python's own modules only (nothing else in the process loads them):
# libssl/libcrypto (OpenSSL 3; trusted certificates are chosen by the app), libffi, libbz2 (Fedora names it
# libbz2.so.1, not .1.0), liblzma, libsqlite3, libuuid, libreadline, libtinfo, libpython itself (glibc 2.35).

# Qt plugins not shipped: embedded/VNC platforms (need QtNetwork, OpenGL device integrations), evdev/TUIO input,
# and the GTK3 theme plugin (see the GTK stack above; the XDG desktop portal theme gives native dialogs).
DROP_PLUGINS = ("qmltooling", "sqldrivers", "virtualkeyboard", "position", "networkinformation", "tls",
                "egldeviceintegrations", "generic", "platforms/libqeglfs", "platforms/libqlinuxfb",
                "platforms/libqminimalegl", "platforms/libqvkkhrdisplay", "platforms/libqvnc",
                "platformthemes/libqgtk3", "platforminputcontexts/libqtvirtualkeyboard")


def from_system(name: str) -> str | None:
    """Why ``name`` is left to the system, or None when the bundle carries it."""
    for prefix, reason in FROM_SYSTEM:
        if name.startswith(prefix):
            return reason
    return None


def system_library(soname: str) -> Path | None:
    """The build machine's copy of ``soname`` for this machine's architecture (from the loader's cache)."""
    import platform

    arch = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(platform.machine(), "")
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and m.group(1) == soname and arch in m.group(2):
            return Path(m.group(3))
    return None


def drop_dangling_links(binaries, datas):
    """Both lists without link entries whose target is not collected (a dropped library leaves its links behind)."""
    files = {dest for dest, _src, kind in binaries + datas if kind != "SYMLINK"}

    def keep(entry):
        dest, src, kind = entry
        return kind != "SYMLINK" or os.path.normpath(os.path.join(os.path.dirname(dest), src)) in files

    return [e for e in binaries if keep(e)], [e for e in datas if keep(e)]


LICENCE_NAME = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT|AUTHORS)[^/]*$|(^|/)licenses/", re.I)


def copy_python_licences(dists, out: Path) -> list[str]:
    """Each distribution's licence files (from its metadata) into ``out/<name>/``; the names with none found."""
    import shutil

    missing = []
    for dist in dists:
        name = dist.metadata["Name"]
        files = [f for f in (dist.files or []) if LICENCE_NAME.search(str(f)) and ".dist-info" in str(f)]
        if not files:
            files = [f for f in (dist.files or []) if LICENCE_NAME.search(str(f)) and not str(f).endswith((".py", ".pyc"))]
        if not files:
            missing.append(name)
            continue
        for f in files:
            src = Path(dist.locate_file(f))
            rel = str(f).split(".dist-info/", 1)[-1]
            rel = rel[len("licenses/"):] if rel.startswith("licenses/") else rel
            target = out / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    return missing


def debian_copyrights(paths, out: Path) -> dict[str, list[str]]:
    """For files from the build machine's system: each Debian package's copyright file into ``out/<package>``."""
    import shutil

    owners: dict[str, list[str]] = {}
    for path in paths:
        spellings = []
        for p in (str(path), str(Path(path).resolve())):  # merged /usr: a package may own either spelling
            spellings += [p, p.replace("/usr/lib/", "/lib/", 1) if p.startswith("/usr/lib/") else p.replace("/lib/", "/usr/lib/", 1)]
        for candidate in dict.fromkeys(spellings):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                owners.setdefault(r.stdout.split(":", 1)[0].strip(), []).append(Path(path).name)
                break
        else:
            owners.setdefault("", []).append(Path(path).name)  # no package owns it: the caller says so
    for package in owners:
        if not package:
            continue
        doc = Path("/usr/share/doc") / package / "copyright"
        if doc.is_file():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(doc, out / package)
    return owners
