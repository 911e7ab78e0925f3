"""The window is up before the model is loaded; on the CPU (no NVIDIA driver) torch is never imported at all."""

import json
import os
import subprocess
import sys

from tests.support.helpers import REPO


def test_window_appears_before_the_model_and_the_cpu_needs_no_torch(checkpoint, tmp_path):
    from pathlib import Path

    nvidia = Path("/proc/driver/nvidia/version").exists()  # only where a GPU can be used is torch asked
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    with subprocess.Popen(  # leaving the block closes the pipes, also when a line is not what is expected
        [sys.executable, "-m", "resnext_gui", "--startup-report", "--weights", str(checkpoint)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    ) as proc:
        try:
            window = json.loads(proc.stdout.readline())
            model = json.loads(proc.stdout.readline())
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill() if proc.poll() is None else None
    assert window["event"] == "window" and window["torch_loaded"] is False  # timings: benchmarks/bench.py
    assert model == {**model, "event": "model", "state": "ready", "torch_loaded": nvidia}
    assert model["s"] > window["s"]
    assert proc.returncode == 0, err
    assert "QThread" not in err and "Traceback" not in err


def test_no_weights_startup_reports_missing_and_exits_cleanly(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "resnext_gui", "--startup-report"], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=60)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["event"] for e in events] == ["window", "model"] and events[1]["state"] == "missing"
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_a_system_without_fonts_is_said_in_one_line_on_stderr(tmp_path):
    """fontconfig finding no fonts at all leaves the window's text as empty boxes and Qt says nothing: the app does."""
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    conf = tmp_path / "fonts.conf"
    conf.write_text(f'<?xml version="1.0"?><fontconfig><dir>{empty}</dir><cachedir>{tmp_path / "fc-cache"}</cachedir></fontconfig>')
    base = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    for env, said in (({**base, "FONTCONFIG_FILE": str(conf)}, True), (base, False)):
        r = subprocess.run([sys.executable, "-m", "resnext_gui", "--startup-report"], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=60)
        lines = [line for line in r.stderr.splitlines() if "font" in line.lower()]
        assert r.returncode == 0 and lines == (["resnext-gui: no fonts found on this system: the window's text cannot "
                                                "be drawn and shows as empty boxes. Install a font package: fonts-dejavu-core"
                                                " (Debian, Ubuntu), dejavu-sans-fonts (Fedora), ttf-dejavu (Arch)."]
                                               if said else []), r.stderr


UP_AND_KEEPING = r"""
import sys
from resnext_gui.launch import app
from resnext_gui.ui import main_window

start = main_window.MainWindow.start


def started(self):  # says when the window is up and its library open (last time's gallery restored)
    self.library.restored.connect(lambda *_: print("restored", flush=True))
    start(self)


main_window.MainWindow.start = started
sys.exit(app.main(sys.argv[1:]))
"""


def test_sigterm_closes_the_window_as_its_close_button_does(checkpoint, photos, tmp_path):
    """A logout or `systemctl stop` sends SIGTERM: settings written, the library checkpointed and closed (no -wal
    or -shm left), the worker stopped, exit status 0. Waits are on what the app prints, guarded against a hang."""
    import queue
    import signal
    import threading

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    library = tmp_path / "data" / "resnext-gui" / "library.sqlite3"
    settings = tmp_path / "config" / "resnext-gui" / "resnext-gui.conf"
    proc = subprocess.Popen([sys.executable, "-c", UP_AND_KEEPING, "--weights", str(checkpoint), str(photos["coffee"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    said: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [said.put(line.strip()) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        assert said.get(timeout=240) == "restored"  # a guard: the model loads first
        assert library.is_file() and library.with_name("library.sqlite3-wal").exists() and not settings.exists()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # a guard against a hang, not a timing
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=60)  # the child is gone: its stdout ends
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "QThread" not in err
    assert settings.is_file() and "geometry" in settings.read_text()
    assert sorted(os.listdir(library.parent)) == ["library.sqlite3"]  # checkpointed: no -wal, no -shm
