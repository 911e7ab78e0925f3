"""The app contacts nothing by itself and writes only its own folders: `classify` and the window run with the network
refused, leave no OpenVINO telemetry (no Google Analytics look-up, no ~/intel) behind, and write nothing in the home
folder outside the app's settings, data and state folders."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.helpers import REPO

# Installed in the app's process through PYTHONPATH: every connection or name look-up other than loopback and
# local sockets is refused, and written to ATTEMPTS (also from forked children, one line each).
GUARD = textwrap.dedent('''
    """Test guard: refuse and record every network use other than loopback."""
    import os
    import socket

    _LOG = os.environ["RESNEXT_GUI_TEST_ATTEMPTS"]
    _LOCAL = ("localhost", "127.0.0.1", "::1", "", None)


    def _local(host):
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        return host in _LOCAL or (isinstance(host, str) and host.startswith("127."))


    def _refuse(what):
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (what.replace("\\n", " ") + "\\n").encode("utf-8", "replace"))
        finally:
            os.close(fd)
        raise OSError(f"network refused by the test: {what}")


    def _wrap_address(name):
        real = getattr(socket.socket, name)

        def guarded(self, address, *args):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                host = address[0] if isinstance(address, tuple) else address
                if not _local(host):
                    _refuse(f"{name} {address!r}")
            return real(self, address, *args)

        setattr(socket.socket, name, guarded)


    for _name in ("connect", "connect_ex"):
        _wrap_address(_name)
    _real_sendto = socket.socket.sendto


    def _sendto(self, data, *args):
        address = args[-1]
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(f"sendto {address!r}")
        return _real_sendto(self, data, *args)


    socket.socket.sendto = _sendto
    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        def _lookup(host, *args, _real=getattr(socket, _name), _name=_name, **kwargs):
            if not _local(host):
                _refuse(f"{_name} {host!r}")
            return _real(host, *args, **kwargs)

        setattr(socket, _name, _lookup)
''')


@pytest.fixture
def no_network(tmp_path):
    """An environment for the app's process: a fresh HOME, and the guard above on its PYTHONPATH."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    home = tmp_path / "home"
    home.mkdir()
    attempts = tmp_path / "attempts.txt"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "RESNEXT_GUI_TEST_ATTEMPTS": str(attempts),
           # the compiled-network cache stays the session's (converting again would only cost time); everything
           # else the app could write goes to its defaults under this fresh HOME, where the tests look
           "XDG_DATA_HOME": "", "XDG_STATE_HOME": "",
           "PYTHONPATH": os.pathsep.join([str(guard), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for var in ("CI", "TF_BUILD", "JENKINS_URL"):  # OpenVINO's telemetry keeps quiet there; users have none of them
        env.pop(var, None)
    return env, home, attempts


def written(home: Path) -> list[str]:
    """Every file (or link) under ``home``, relative to it."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() or p.is_symlink())


def _network_use(attempts: Path) -> list[str]:
    return attempts.read_text().splitlines() if attempts.exists() else []


def test_the_guard_sees_a_lookup(no_network):
    """The guard itself works: a name look-up in the guarded process is refused and recorded."""
    env, _, attempts = no_network
    code = "import socket\ntry:\n    socket.getaddrinfo('example.org', 443)\nexcept OSError:\n    print('refused')\n"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "refused", r.stderr
    assert _network_use(attempts) == ["getaddrinfo 'example.org'"]


def test_classify_uses_no_network_and_writes_nothing_in_home(no_network, checkpoint, photos):
    env, home, attempts = no_network
    r = subprocess.run([sys.executable, "-m", "resnext_gui", "classify", "--backend", "openvino", "--weights",
                        str(checkpoint), str(photos["chelsea"])],
                       env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])["ok"] is True
    assert _network_use(attempts) == []
    assert not (home / "intel").exists()
    assert written(home) == []  # classify keeps nothing without --library


def test_the_window_uses_no_network_and_writes_nothing_in_home(no_network, checkpoint, photos):
    """The window, offscreen, until its first answer (--startup-report closes it then)."""
    env, home, attempts = no_network
    env = {**env, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-m", "resnext_gui", "--startup-report", "--weights", str(checkpoint),
                        str(photos["chelsea"])], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert {"event": "result", "ok": True}.items() <= events[-1].items(), r.stdout
    assert _network_use(attempts) == []
    assert not (home / "intel").exists()
    own = (".config/resnext-gui/", ".local/share/resnext-gui/", ".local/state/resnext-gui/")
    files = written(home)
    assert [f for f in files if not f.startswith(own)] == []  # only the app's settings, library and log
    assert ".config/resnext-gui/resnext-gui.conf" in files and ".local/share/resnext-gui/library.sqlite3" in files
    assert ".local/state/resnext-gui/resnext-gui.log" in files
