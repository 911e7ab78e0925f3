"""`--install-desktop-entry` puts the app in the user's menus and "Open with" for photos; uninstall removes it."""

import configparser
import os
import select
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resnext_gui.launch import desktop_entry
from resnext_gui.launch.desktop_entry import MIME_TYPES, entry_text, launch_command
from tests.support.helpers import REPO, run_cli


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
    exe = '/opt/My Apps/resnext "gui"/resnext-gui'
    entry = configparser.ConfigParser(interpolation=None)
    entry.read_string(entry_text([exe]))
    line = entry["Desktop Entry"]["Exec"]
    # Two layers, as the specification says: string escapes (\\ for a backslash), then argument quoting.
    assert line == '"/opt/My Apps/resnext \\\\"gui\\\\"/resnext-gui" %F'
    unescaped = line.replace("\\\\", "\\")
    assert shlex.split(unescaped)[0] == exe
    # a % is escaped %%, and the program is then started through the shell: GLib looks Exec's first word up
    # before it unescapes %%, and would reject the entry (test_gio_launches_a_program_whose_path_has_a_percent_sign)
    entry.read_string(entry_text(["/opt/50%/resnext-gui"]))
    line = entry["Desktop Entry"]["Exec"].replace("\\\\", "\\")
    assert line == '/bin/sh -c "exec \\"\\$0\\" \\"\\$@\\"" /opt/50%%/resnext-gui %F'


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


def test_the_menu_starts_this_installation_not_the_first_on_path(monkeypatch, tmp_path):
    planted = tmp_path / "bin"
    planted.mkdir()
    for folder in (planted, tmp_path):
        (folder / "resnext-gui").write_text("#!/bin/sh\necho planted\n")
        (folder / "resnext-gui").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{planted}:.:{os.environ.get('PATH', '')}")
    assert launch_command() == [os.path.abspath(sys.executable), "-m", "resnext_gui"]


def test_install_never_writes_through_a_planted_temporary_name(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(desktop_entry, "_refresh_caches", lambda: None)
    victims = []
    for target in (desktop_entry.desktop_file(), desktop_entry.icon_file()):
        target.parent.mkdir(parents=True)
        victim = tmp_path / f"victim of {target.name}"
        victim.write_text("mine")
        target.with_name(f".{target.name}.tmp").symlink_to(victim)
        victims.append(victim)
    written = desktop_entry.install()
    assert [v.read_text() for v in victims] == ["mine", "mine"]
    assert all(p.is_file() and not p.is_symlink() for p in written)
    assert desktop_entry.MARK in desktop_entry.desktop_file().read_text(encoding="utf-8").splitlines()


def test_uninstall_leaves_an_entry_it_did_not_write(tmp_path):
    data = tmp_path / "data"
    desktop = data / "applications" / "resnext-gui.desktop"
    desktop.parent.mkdir(parents=True)
    hand_made = "[Desktop Entry]\nType=Application\nName=My own\nExec=/opt/mine %F\n"
    desktop.write_text(hand_made)
    r = run_cli("--uninstall-desktop-entry", env={"XDG_DATA_HOME": str(data)})
    assert r.returncode == 0, r.stderr
    assert desktop.read_text() == hand_made and "did not write it" in r.stderr and "removed" not in r.stdout
    assert run_cli("--install-desktop-entry", env={"XDG_DATA_HOME": str(data)}).returncode == 0
    r = run_cli("--uninstall-desktop-entry", env={"XDG_DATA_HOME": str(data)})
    assert not desktop.exists() and f"removed {desktop}" in r.stdout


def test_gio_launches_a_program_whose_path_has_a_percent_sign(tmp_path):
    """GLib (`gio launch`, what file managers use) loads the entry and starts the program with the photo."""
    gio = shutil.which("gio")
    if gio is None:
        pytest.skip("gio is missing (Debian package libglib2.0-bin)")
    folder = tmp_path / "50% off" / "bin"
    folder.mkdir(parents=True)
    pipe = tmp_path / "argv"
    os.mkfifo(pipe)
    program = folder / "resnext-gui"
    program.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > '{pipe}'\n")
    program.chmod(0o755)
    desktop = tmp_path / "resnext-gui.desktop"
    desktop.write_text(entry_text([str(program)]), encoding="utf-8")
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # opens at once; select() waits for the program to write
    try:
        r = subprocess.run([gio, "launch", str(desktop), "/etc/hostname"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        out = b""
        while True:
            ready, _, _ = select.select([reader], [], [], 60)  # a guard: the program writes as it starts
            assert ready, "the program did not start"
            chunk = os.read(reader, 4096)
            if not chunk and out:
                break
            out += chunk
    finally:
        os.close(reader)
    assert out.decode().splitlines() == [str(program), "/etc/hostname"]
