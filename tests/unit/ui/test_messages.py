"""The message channel (ui/messages.py): status text, plain-text dialogs, and worker answers routed by job kind."""

from PySide6.QtCore import Qt

from resnext_gui.ui.messages import Messages
from resnext_gui.worker import ClassifyJob, DownloadJob, ViewJob
from tests.support.ui_fakes import FakeWorker


def test_answers_go_to_the_piece_that_handles_their_kind_and_a_failure_nobody_handles_is_shown(qtbot):
    worker = FakeWorker()
    messages = Messages()
    messages.listen(worker)
    got = []
    messages.route(ViewJob, lambda job, res: got.append(("view", res)), lambda job, m: got.append(("view failed", m)),
                   lambda job, d, t: got.append(("progress", d, t)))
    view = worker.view(1, "a.jpg")
    worker.answer(view, "image")
    worker.fail(view, "gone")
    worker.progress.emit(view, 3, 4)
    worker.finished.emit(ClassifyJob(2, "b.jpg"), None)  # no handler: nothing happens
    assert got == [("view", "image"), ("view failed", "gone"), ("progress", 3, 4)]
    assert messages.last_message is None
    worker.fail(DownloadJob(), "<b>disk full</b>")
    box = messages.last_message
    assert box is not None and box.text() == "<b>disk full</b>" and box.textFormat() == Qt.TextFormat.PlainText
    box.close()


def test_status_text_goes_out_with_its_duration(qtbot):
    messages = Messages()
    with qtbot.waitSignal(messages.status) as blocker:
        messages.show_status("Saved x.png", 5000)
    assert blocker.args == ["Saved x.png", 5000]
