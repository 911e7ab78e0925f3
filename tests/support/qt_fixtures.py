"""Qt test support: an isolated QSettings file, a running window, drops, and a no-leak guard (used by the Qt test folders' conftest)."""

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from resnext_gui.ui.gallery import Status
from resnext_gui.ui.main_window import MainWindow
from resnext_gui.worker.runner import Worker
from resnext_gui.worker.scanner import FolderScanner

MODEL_TIMEOUT = 90_000


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    leaked = list(Worker.live) + list(FolderScanner.live)
    for thread in leaked:
        thread.stop()
    assert not leaked, "a test left the inference or folder-scan thread running"


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def start_worker(worker):
    """Start a worker's thread and load its first model, as the window does (its answer: ModelInfo or ModelMissing)."""
    from resnext_gui.worker.jobs.model import LoadJob

    worker.start()
    return worker.submit(LoadJob(worker.first_model.weights, worker.first_model.device))


def open_window(qtbot, settings, weights=None, state="ready", factory=None):
    """Show a window and wait for its model. Tests wait on the window's GUI-thread signals only."""
    worker = Worker(str(weights) if weights else None, "cpu", classifier_factory=factory) if factory else None
    win = MainWindow(weights=str(weights) if weights else None, device="cpu", settings=settings, worker=worker)
    if worker is not None:
        worker.setParent(win)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.modelStateChanged, timeout=MODEL_TIMEOUT, check_params_cb=lambda s: s == state):
        win.start()
    return win


@pytest.fixture(scope="session")
def shared_model(checkpoint):
    """The worker's classifier factory, loading the test checkpoint once for every window test that uses it
    (windows are used one at a time); any other file or device is loaded for real, as the app would."""
    from resnext_gui.worker.runner import default_factory as _default_factory

    loaded = {}

    def factory(weights, device, **options):
        progress = options.pop("progress", None)
        if weights != str(checkpoint) or device != "cpu":
            return _default_factory(weights, device, progress=progress, **options)
        key = tuple(sorted(options.items()))  # one model per runtime and precision asked for
        if key not in loaded:
            loaded[key] = _default_factory(weights, device, progress=progress, **options)
        return loaded[key]

    return factory


@pytest.fixture
def window(qtbot, checkpoint, settings, shared_model):
    win = open_window(qtbot, settings, checkpoint, factory=shared_model)
    yield win
    win.close()
    assert not win.worker.is_running()


def drop(widget, paths=(), mime=None):
    """pytest-qt has no drag-and-drop helper: send the enter and drop events Qt would deliver."""
    if mime is None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    ev = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)
    return ev


def drop_and_list(qtbot, win, paths, timeout=60_000):
    """Drop files or folders and wait until the scanner has put them all in the gallery."""
    with qtbot.waitSignal(win.scanFinished, timeout=timeout):
        ev = drop(win, paths)
    return ev


def wait_all_done(qtbot, win, timeout=120_000):
    qtbot.waitUntil(lambda: len(win.photos) and all(p.status is not Status.QUEUED for p in win.photos), timeout=timeout)
