"""Files the app writes and reads (core/files.py): whole or not at all, never through a planted link, permissions
as a program's or as they were, pipes and devices refused without waiting, the XDG folders."""

import os
import stat

import pytest

from resnext_gui.core.files import NotRegularFile, atomic_file, cache_root, data_root, open_regular, refuse_special, state_root


def test_a_failed_write_leaves_the_earlier_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("earlier")
    with pytest.raises(RuntimeError), atomic_file(target, text=True) as fh:
        fh.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_a_link_at_the_name_is_replaced_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "out.png"
    os.symlink(victim, target)
    with atomic_file(target) as fh:
        fh.write(b"new")
    assert victim.read_text() == "keep me" and not target.is_symlink() and target.read_bytes() == b"new"


def test_permissions_as_a_program_s_or_as_the_file_had_them(tmp_path):
    umask = os.umask(0o022)
    try:
        shared = tmp_path / "shared.txt"
        with atomic_file(shared, shared=True) as fh:
            fh.write(b"x")
        private = tmp_path / "private.bin"
        private.write_bytes(b"old")
        private.chmod(0o600)
        with atomic_file(private, shared=True, keep_mode=True) as fh:
            fh.write(b"new")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644 and stat.S_IMODE(private.stat().st_mode) == 0o600


def test_pipes_and_folders_are_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="a named pipe"):
        open_regular(fifo)  # opened non-blocking: no writer is waited for
    with pytest.raises(NotRegularFile, match="a folder"):
        refuse_special(tmp_path)
    refuse_special(tmp_path / "new.png")  # nothing there yet: fine
    with open_regular(__file__) as fh:
        assert fh.read(3) == b'"""'


def test_the_app_s_folders_follow_xdg_and_ignore_a_relative_value(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # the spec says to ignore it
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert cache_root() == tmp_path / "cache" / "resnext-gui"
    assert data_root() == tmp_path / "home" / ".local" / "share" / "resnext-gui"
    assert state_root() == tmp_path / "home" / ".local" / "state" / "resnext-gui"
