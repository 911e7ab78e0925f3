"""The pre-flight before Qt starts: a platform plugin that can't load is explained, or the other platform is used."""

import os
import subprocess
import sys

import pytest

from resnext_gui import preflight as P

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
    code = ("import sys; from resnext_gui import preflight as P; "
            f"P.plugins_dir = lambda: {str(tmp_path)!r}; "
            "from pathlib import Path; "
            f"P.check_plugin = lambda p, f=None: P.PluginCheck(p, Path('.'), 'x', [{ICCCM!r}]); "
            "sys.exit(P.ensure_platform())")
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
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
