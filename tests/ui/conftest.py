"""Fixtures for widget tests: an isolated QSettings file, a running window, and a no-leak guard."""

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from resnext_gui.ui.main_window import MainWindow
from resnext_gui.worker import WorkerBridge

MODEL_TIMEOUT = 90_000


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    leaked = list(WorkerBridge.live)
    for bridge in leaked:
        bridge.stop()
    assert not leaked, "a test left the inference thread running"


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def open_window(qtbot, settings, weights=None, state="ready"):
    """Show a window and wait for its model. Tests wait on the window's GUI-thread signals only:
    pytest-qt's blockers must not be triggered from the worker thread."""
    win = MainWindow(weights=str(weights) if weights else None, device="cpu", settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == state):
        win.start()
    return win


@pytest.fixture
def window(qtbot, checkpoint, settings):
    win = open_window(qtbot, settings, checkpoint)
    yield win
    win.close()
    assert not win.bridge.thread.isRunning()


def drop(widget, paths=(), mime=None):
    """pytest-qt has no drag-and-drop helper: send the enter and drop events Qt would deliver."""
    if mime is None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    enter = QDragEnterEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    ev = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)
    return ev


def wait_all_done(qtbot, win, timeout=120_000):
    qtbot.waitUntil(lambda: win.items and all(i.status != "queued" for i in win.items.values()), timeout=timeout)
