"""`--install-desktop-entry` puts the app in the user's menus and "Open with" for photos; uninstall removes it."""

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from resnext_gui.desktop_entry import MIME_TYPES, entry_text, launch_command
from tests.helpers import REPO, run_cli


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return dict(parser["Desktop Entry"])


def test_install_and_uninstall_in_the_xdg_data_home(tmp_path):
    data = tmp_path / "xdg data"
    r = run_cli("--install-desktop-entry", env={"XDG_DATA_HOME": str(data)})
    assert r.returncode == 0, r.stderr
    desktop = data / "applications" / "resnext-gui.desktop"
    icon = data / "icons" / "hicolor" / "256x256" / "apps" / "resnext-gui.png"
    assert str(desktop) in r.stdout and str(icon) in r.stdout
    assert icon.read_bytes() == (REPO / "assets" / "icon.png").read_bytes()
    entry = read_entry(desktop)
    assert entry["Type"] == "Application" and entry["Icon"] == "resnext-gui" and entry["Terminal"] == "false"
    assert set(entry["MimeType"].rstrip(";").split(";")) == set(MIME_TYPES) >= {"image/jpeg", "image/png"}
    command = shlex.split(entry["Exec"])
    assert command[-1] == "%F" and Path(command[0]).is_absolute() and Path(command[0]).exists()

    r = run_cli("--uninstall-desktop-entry", env={"XDG_DATA_HOME": str(data)})
    assert r.returncode == 0, r.stderr
    assert not desktop.exists() and not icon.exists()
    assert "no desktop entry was installed" in run_cli("--uninstall-desktop-entry", env={"XDG_DATA_HOME": str(data)}).stdout


def test_exec_line_quotes_paths_with_spaces_and_specials(tmp_path):
    exe = '/opt/My Apps/resnext "gui"/50%/resnext-gui'
    entry = configparser.ConfigParser(interpolation=None)
    entry.read_string(entry_text([exe]))
    line = entry["Desktop Entry"]["Exec"]
    # Two layers, as the specification says: string escapes (\\ for a backslash), then argument quoting.
    assert line == '"/opt/My Apps/resnext \\\\"gui\\\\"/50%%/resnext-gui" %F'
    unescaped = line.replace("\\\\", "\\")
    assert shlex.split(unescaped.replace("%%", "%"))[0] == exe


@pytest.mark.parametrize("command", [None, '/opt/My Apps/resnext "gui"/50%/resnext-gui'])
def test_the_entry_passes_desktop_file_validate(tmp_path, command):
    """Debian's validator (desktop-file-utils) accepts the entry as written, without a warning or a hint:
    a Version it knows and one main category, so menus list the app once."""
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate is missing (Debian package desktop-file-utils)")
    if command is None:  # the file --install-desktop-entry writes
        data = tmp_path / "data"
        assert run_cli("--install-desktop-entry", env={"XDG_DATA_HOME": str(data)}).returncode == 0
        desktop = data / "applications" / "resnext-gui.desktop"
    else:
        desktop = tmp_path / "resnext-gui.desktop"
        desktop.write_text(entry_text([command]), encoding="utf-8")
    r = subprocess.run([validator, str(desktop)], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


def test_the_standalone_app_is_started_through_its_glibc_check(monkeypatch, tmp_path):
    """Frozen, the executable is dist/resnext-gui/resnext-gui.bin and the menu entry names the script beside it."""
    exe = tmp_path / "resnext-gui.bin"
    exe.touch()
    monkeypatch.setattr("sys.frozen", True, raising=False)
    monkeypatch.setattr("sys.executable", str(exe))
    assert launch_command() == [str(exe)]  # no script beside it (a build without one): the executable itself
    (tmp_path / "resnext-gui").touch()
    assert launch_command() == [str(tmp_path / "resnext-gui")]
