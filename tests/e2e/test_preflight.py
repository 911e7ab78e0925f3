"""The pre-flight before Qt starts: a platform plugin that can't load is explained, or the other platform is used."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resnext_gui.launch import preflight as P
from tests.support.helpers import REPO, XDisplay

ICCCM = "libxcb-icccm.so.4"


def test_packages_are_named_for_debian_and_fedora():
    assert P.package_of(ICCCM) == ("libxcb-icccm4", "xcb-util-wm")
    assert P.package_of("libxcb-xinput.so.0") == ("libxcb-xinput0", "libxcb")
    text = P.explain(P.PluginCheck("xcb", None, "cannot open", [ICCCM, "libxcb-keysyms.so.1"]))
    assert ICCCM in text and "libxcb-icccm4" in text and "xcb-util-wm" in text
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1" in text
    assert "sudo dnf install xcb-util-wm xcb-util-keysyms" in text


def test_the_installed_xcb_plugin_loads():
    check = P.check_plugin("xcb")
    assert check.ok, check.error


@pytest.fixture
def fake_plugins(monkeypatch, tmp_path):
    """xcb's plugin misses a library; wayland's loads."""
    monkeypatch.setattr(P, "plugins_dir", lambda: tmp_path)
    monkeypatch.setattr(P, "check_plugin", lambda platform, folder=None: P.PluginCheck(platform, tmp_path) if platform == "wayland"
                        else P.PluginCheck(platform, tmp_path, f"{ICCCM}: cannot open shared object file", [ICCCM]))
    for var in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(P, "x_server_problem", lambda display, timeout=5.0: None)  # an X server answers there
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_missing_library_is_named_and_the_app_does_not_start(fake_plugins, capsys):
    assert P.ensure_platform() == P.EXIT_NO_PLATFORM
    err = capsys.readouterr().err
    assert ICCCM in err and "libxcb-icccm4" in err and "No wayland session" in err


def test_the_other_platform_is_used_when_its_session_exists(fake_plugins, monkeypatch, tmp_path, capsys):
    (tmp_path / "wayland-0").touch()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert P.ensure_platform() is None
    assert os.environ["QT_QPA_PLATFORM"] == "wayland"
    assert "Using the wayland platform instead" in capsys.readouterr().err


def test_offscreen_is_not_checked(fake_plugins, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert P.ensure_platform() is None


def test_without_a_terminal_the_message_goes_to_a_log_and_a_dialog(fake_plugins, monkeypatch, tmp_path):
    """Started from a file manager: stderr goes nowhere, so a log file is written and zenity is called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    said = tmp_path / "zenity-args"
    (bin_dir / "zenity").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {said}\n")
    (bin_dir / "zenity").chmod(0o755)
    code = ("import sys; from resnext_gui.launch import preflight as P; "
            f"P.plugins_dir = lambda: {str(tmp_path)!r}; "
            "from pathlib import Path; "
            f"P.check_plugin = lambda p, f=None: P.PluginCheck(p, Path('.'), 'x', [{ICCCM!r}]); "
            "P.x_server_problem = lambda d, timeout=5.0: None; "
            "sys.exit(P.ensure_platform())")
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "DISPLAY": ":99"}
    r = subprocess.run([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    assert r.returncode == P.EXIT_NO_PLATFORM
    log = tmp_path / "state" / "resnext-gui" / "startup-error.log"
    assert ICCCM in log.read_text() and "libxcb-icccm4" in log.read_text()
    args = said.read_text()
    assert "--error" in args and ICCCM in args and str(log) in args


def test_each_missing_library_is_listed_once(monkeypatch, tmp_path):
    """ldd lists a library once per object that needs it (the plugin and Qt's xcb library both need icccm)."""
    fake = tmp_path / "ldd"
    fake.write_text("#!/bin/sh\necho '\tlibxcb-icccm.so.4 => not found'\necho '\tlibc.so.6 => /lib/libc.so.6 (0x1)'\n"
                    "echo '\tlibxcb-keysyms.so.1 => not found'\necho '\tlibxcb-icccm.so.4 => not found'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert P.missing_libraries(tmp_path / "libqxcb.so") == [ICCCM, "libxcb-keysyms.so.1"]


# A display that can't be reached: said in one line with EXIT_NO_DISPLAY, before Qt can abort (exit 134).

def _free_x_display() -> str:
    """A display number no X server listens on (neither its socket file nor its abstract socket exists)."""
    try:
        listening = Path("/proc/net/unix").read_text()
    except OSError:
        listening = ""
    n = next(n for n in range(4700, 4800)
             if not Path(f"/tmp/.X11-unix/X{n}").exists() and f"/tmp/.X11-unix/X{n}\n" not in listening)
    return f":{n}"


def _start_window(tmp_path, *args, **env):
    """`python -m resnext_gui ARGS` with only the display variables in ``env`` (others removed), no terminal."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE", "XDG_RUNTIME_DIR")}
    full = {**base, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"), **env}
    return subprocess.run([sys.executable, "-m", "resnext_gui", *args], env=full, cwd=REPO, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("platform", [None, "xcb", "wayland"])
def test_no_display_at_all(tmp_path, platform):
    """An ssh login without X forwarding, a console, a cron job: neither DISPLAY nor WAYLAND_DISPLAY."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path)} | ({"QT_QPA_PLATFORM": platform} if platform else {})
    r = _start_window(tmp_path, **env)
    assert (r.returncode, r.stderr) == (P.EXIT_NO_DISPLAY, f"resnext-gui: {P.NO_DISPLAY_SET}\n")
    assert "`resnext-gui classify`" in P.NO_DISPLAY_SET and "neither DISPLAY nor WAYLAND_DISPLAY" in P.NO_DISPLAY_SET
    assert P.NO_DISPLAY_SET in (tmp_path / "state" / "resnext-gui" / "startup-error.log").read_text()


def test_an_x_server_that_does_not_answer(tmp_path):
    display = _free_x_display()
    r = _start_window(tmp_path, DISPLAY=display)
    assert (r.returncode, r.stderr) == (P.EXIT_NO_DISPLAY, f"resnext-gui: no display found (cannot connect to X server {display})\n")


def test_neither_the_wayland_compositor_nor_the_x_server_is_there(tmp_path):
    display = _free_x_display()
    r = _start_window(tmp_path, DISPLAY=display, WAYLAND_DISPLAY="wayland-7", XDG_RUNTIME_DIR=str(tmp_path),
                      XDG_SESSION_TYPE="wayland")
    assert r.returncode == P.EXIT_NO_DISPLAY
    assert r.stderr.startswith("resnext-gui: no display found (") and r.stderr.endswith(")\n")
    reasons = r.stderr[len("resnext-gui: no display found ("):-2].split("; ")
    assert sorted(reasons) == [f"cannot connect to X server {display}", f"no Wayland compositor at {tmp_path / 'wayland-7'}"]


def test_a_display_name_that_is_not_one():
    assert P.x_server_problem("not a display") == "DISPLAY=not a display is not a display name"


@pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("openbox")),
                    reason="needs Xvfb and openbox (Debian packages xvfb, openbox; .ci/run installs them)")
def test_a_broken_wayland_falls_back_to_the_running_x_server(tmp_path):
    """QT_QPA_PLATFORM=wayland (or a Wayland session) whose compositor is gone, with an X server named too:
    the window opens on X, with a note. --startup-report closes it once the model state is known."""
    with XDisplay() as env:
        display = env["DISPLAY"]
        assert P.x_server_problem(display) is None
        r = _start_window(tmp_path, "--startup-report", DISPLAY=display, WAYLAND_DISPLAY="wayland-7",
                          XDG_RUNTIME_DIR=str(tmp_path), QT_QPA_PLATFORM="wayland", XDG_SESSION_TYPE="wayland")
    assert r.returncode == 0, r.stderr
    note = f"resnext-gui: no Wayland compositor at {tmp_path / 'wayland-7'}; using the X11 display {display} instead."
    assert note in r.stderr.splitlines()
    events = [json.loads(line)["event"] for line in r.stdout.splitlines()]
    assert events == ["window", "model"]


def test_a_compositor_nobody_named_is_not_used(monkeypatch, tmp_path):
    """A Wayland socket in XDG_RUNTIME_DIR, but this login (ssh) names no display: don't open a window on
    somebody's desktop session."""
    (tmp_path / "wayland-0").touch()
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert P.ensure_platform() == P.EXIT_NO_DISPLAY


def test_an_x_server_that_is_gone_falls_back_to_wayland(fake_plugins, monkeypatch, tmp_path, capsys):
    """QT_QPA_PLATFORM=xcb on a Wayland desktop whose Xwayland does not answer: Wayland, with a note."""
    (tmp_path / "wayland-1").touch()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-1")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(P, "x_server_problem", lambda display, timeout=5.0: f"cannot connect to X server {display}")
    assert P.ensure_platform() is None
    assert os.environ["QT_QPA_PLATFORM"] == "wayland"
    assert (f"resnext-gui: cannot connect to X server :99; using the Wayland display {tmp_path / 'wayland-1'} instead."
            in capsys.readouterr().err)


# The standalone app's launcher script (packaging/resnext-gui.sh, installed as dist/resnext-gui/resnext-gui in
# front of PyInstaller's resnext-gui.bin): a glibc older than the bundle's floor is named before the loader fails.

LAUNCHER = REPO / "packaging" / "resnext-gui.sh"
EXIT_OLD_SYSTEM = 6
TOO_OLD = ("resnext-gui: this system's C library (glibc 2.31) is older than the 2.35 this app needs "
           "(Debian 12, Ubuntu 22.04 or newer)")


@pytest.fixture
def launcher(tmp_path):
    """The script as the bundle installs it, beside a stand-in for the real executable that prints its
    arguments one per line and exits 7; ``run(getconf=..., ldd=...)`` runs it with those tools faked."""
    app = tmp_path / "dist app"
    app.mkdir()
    shutil.copy(LAUNCHER, app / "resnext-gui")
    (app / "resnext-gui.bin").write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\nexit 7\n")
    (app / "resnext-gui.bin").chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()

    def run(*args, getconf=None, ldd=None, exe=app / "resnext-gui", stderr_to=subprocess.PIPE, **env):
        for name, script in (("getconf", getconf), ("ldd", ldd)):
            if script is not None:
                (tools / name).write_text(f"#!/bin/sh\n{script}\n")
                (tools / name).chmod(0o755)
        full = {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), **env}
        return subprocess.run([str(exe), *args], env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=stderr_to, text=True, timeout=60)

    run.app = app
    return run


def test_an_old_glibc_is_named_and_the_app_is_not_started(launcher):
    r = launcher("photo.jpg", getconf='[ "$1" = GNU_LIBC_VERSION ] && echo "glibc 2.31" || exit 1')
    assert (r.returncode, r.stdout, r.stderr) == (EXIT_OLD_SYSTEM, "", TOO_OLD + "\n")


def test_without_getconf_ldd_says_the_version(launcher):
    r = launcher(getconf="exit 1", ldd='echo "ldd (Debian GLIBC 2.31-13+deb11u5) 2.31"; echo "Copyright (C) 2020"')
    assert (r.returncode, r.stderr) == (EXIT_OLD_SYSTEM, TOO_OLD + "\n")


def test_musl_is_not_glibc(launcher):
    r = launcher(getconf="exit 1", ldd='echo "musl libc (x86_64)" >&2; exit 1')
    assert r.returncode == EXIT_OLD_SYSTEM and "is musl, not glibc; this app needs glibc 2.35 or newer" in r.stderr


@pytest.mark.parametrize("version", ["glibc 2.35", "glibc 2.36", "glibc 2.39.9000", "glibc 3.0"])
def test_a_new_enough_glibc_starts_the_app_with_its_arguments(launcher, version):
    r = launcher("two words", "--x=$HOME", "", getconf=f'echo "{version}"')
    assert (r.returncode, r.stdout, r.stderr) == (7, "two words\n--x=$HOME\n\n", "")


def test_an_unknown_c_library_does_not_stop_the_app(launcher):
    """Neither tool says (a stripped-down system): the app starts and the loader has the last word."""
    r = launcher("y", getconf="exit 1", ldd="exit 127")
    assert (r.returncode, r.stdout) == (7, "y\n")


def test_started_through_a_link_from_another_folder(launcher, tmp_path):
    link = tmp_path / "bin" / "resnext-gui"
    link.parent.mkdir()
    link.symlink_to(launcher.app / "resnext-gui")
    r = launcher("x", getconf='echo "glibc 2.36"', exe=link)
    assert (r.returncode, r.stdout) == (7, "x\n")


def test_the_real_glibc_here_passes(launcher):
    """With the system's own getconf (this machine has glibc >= 2.35, like every system the app supports)."""
    r = launcher("ok", PATH="/usr/bin:/bin")
    assert (r.returncode, r.stdout) == (7, "ok\n"), r.stderr


def test_from_a_menu_the_old_glibc_goes_to_the_log_and_a_dialog(launcher, tmp_path):
    """No terminal: the message also goes to the start-up log and to zenity, as preflight does it."""
    said = tmp_path / "zenity-args"
    (tmp_path / "tools" / "zenity").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{said}'\n")
    (tmp_path / "tools" / "zenity").chmod(0o755)
    r = launcher(getconf='echo "glibc 2.31"', stderr_to=subprocess.DEVNULL, XDG_STATE_HOME=str(tmp_path / "state"))
    assert r.returncode == EXIT_OLD_SYSTEM
    log = tmp_path / "state" / "resnext-gui" / "startup-error.log"
    assert TOO_OLD in log.read_text()
    args = said.read_text()
    assert "--error" in args and TOO_OLD in args and str(log) in args


def test_the_launcher_floor_is_the_bundles():
    """The script's floor is the one the README and the bundle's glibc test state."""
    assert "\nNEED=2.35\n" in LAUNCHER.read_text()
    assert "glibc 2.35 or newer" in (REPO / "README.md").read_text()
    assert "GLIBC_CEILING = (2, 35)" in (REPO / "tests" / "standalone" / "test_dist.py").read_text()
