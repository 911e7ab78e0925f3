"""Folders listed on a thread of their own (worker/scanner.py): each request's files in chunks, in order, what was
skipped and passed over said, a cancel stops the listing at its next file, and the thread stops."""

import pytest

from resnext_gui.worker import scanner as scanner_module
from resnext_gui.worker.scanner import FolderScanner


@pytest.fixture
def scanner(qtbot):
    s = FolderScanner()
    yield s
    assert s.stop()


def test_a_request_s_files_come_in_chunks_in_order_then_its_end_with_the_count(qtbot, scanner, tmp_path, monkeypatch):
    monkeypatch.setattr(scanner_module, "CHUNK_FILES", 4)
    for i in range(10):
        (tmp_path / f"p{i:02}.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    chunks, others = [], []
    scanner.found.connect(lambda rid, paths: chunks.append((rid, list(paths))))
    scanner.passedOver.connect(lambda rid, n: others.append((rid, n)))
    with qtbot.waitSignal(scanner.finishedRequest, timeout=30_000) as end:
        rid = scanner.scan([str(tmp_path)])
    assert end.args == [rid, 10, False]
    assert all(r == rid and len(paths) <= 4 for r, paths in chunks) and len(chunks) >= 3
    assert [p for _, paths in chunks for p in paths] == [str(tmp_path / f"p{i:02}.png") for i in range(10)]
    assert others == [(rid, 1)]


def test_a_cancel_stops_the_listing_under_way_drops_the_waiting_ones_and_later_ones_are_listed(
        qtbot, scanner, tmp_path, monkeypatch):
    import threading

    import resnext_gui.core.paths as paths

    (tmp_path / "a.jpg").write_bytes(b"x")
    started, gate = threading.Event(), threading.Event()
    real = paths.iter_images

    def held(*args, **kwargs):  # the first listing waits, once it has begun, until the test lets it go on
        if not started.is_set():
            started.set()
            gate.wait(30)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(paths, "iter_images", held)
    ends = []
    scanner.finishedRequest.connect(lambda rid, n, cancelled: ends.append((rid, n, cancelled)))
    first = scanner.scan([str(tmp_path)])
    qtbot.waitUntil(started.is_set)
    waiting = scanner.scan([str(tmp_path)])
    scanner.cancel()
    gate.set()
    with qtbot.waitSignal(scanner.finishedRequest, timeout=30_000, check_params_cb=lambda rid, n, c: rid == waiting + 1):
        later = scanner.scan([str(tmp_path)])
    assert ends == [(first, 0, True), (waiting, 0, True), (later, 1, False)]
