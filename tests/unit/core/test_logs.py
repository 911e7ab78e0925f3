"""The app's log (core/logs.py): a rotating file under 1 MB in all, uncaught exceptions with their tracebacks, and
messages that say where the details are."""

import logging
import sys
import threading

import pytest

from resnext_gui.core import logs


@pytest.fixture
def log_to(tmp_path):
    path = logs.to_file(tmp_path / "state")
    yield path
    logs.stop()


def test_the_file_is_in_the_state_folder_and_messages_name_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    try:
        path = logs.to_file()
        assert path == tmp_path / "xdg-state" / "resnext-gui" / "resnext-gui.log" and path.is_file()
        assert logs.internal_error(ValueError("bad")) == f"internal error: ValueError('bad'); details are in the log: {path}"
    finally:
        logs.stop()
    assert logs.log_file() is None and logs.internal_error(ValueError("bad")) == "internal error: ValueError('bad')"


def test_the_log_and_its_one_older_copy_stay_under_a_megabyte(log_to):
    log = logging.getLogger("resnext_gui.core.test")
    line = "x" * 1000
    for i in range(3000):  # about 3 MB written in all
        log.info("%d %s", i, line)
    files = list(log_to.parent.glob("resnext-gui.log*"))
    assert len(files) == 2 and sum(f.stat().st_size for f in files) < 1_000_000
    assert "2999" in log_to.read_text()  # the newest lines are kept


def test_an_uncaught_exception_reaches_the_log_with_its_traceback(log_to, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: seen.append(exc[1]))
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    logs.log_uncaught()
    try:
        raise RuntimeError("nobody caught this")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())

    def fails():
        raise KeyError("in a thread")

    t = threading.Thread(target=fails, name="helper thread")
    t.start()
    t.join()
    text = log_to.read_text()
    assert "uncaught exception" in text and "Traceback (most recent call last)" in text
    assert "RuntimeError: nobody caught this" in text and "KeyError: 'in a thread'" in text and "helper thread" in text
    assert [str(e) for e in seen] == ["nobody caught this"]  # still handed on to the hook that was there before
