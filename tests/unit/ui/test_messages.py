"""The message channel (ui/messages.py): status text, plain-text dialogs, and a worker failure nobody asked to hear."""

from PySide6.QtCore import Qt

from resnext_gui.ui.messages import Messages
from resnext_gui.worker.jobs.model import DownloadJob
from resnext_gui.worker.jobs.photo import ViewJob
from tests.support.ui_fakes import FakeWorker


def test_an_answer_goes_to_the_callbacks_its_job_was_sent_with_and_an_unheard_failure_is_shown(qtbot):
    worker = FakeWorker()
    messages = Messages()
    messages.listen(worker)
    got = []
    view = worker.submit(ViewJob(1, "a.jpg"), lambda res: got.append(("view", res)),
                         lambda m: got.append(("view failed", m)), lambda d, t: got.append(("progress", d, t)))
    other = worker.submit(ViewJob(2, "b.jpg"), lambda res: got.append(("other", res)))
    worker.report(view, 3, 4)
    worker.answer(view, "image")
    worker.answer(view, "again")  # a job answers once: a second answer goes nowhere
    worker.answer(other, "its own")
    assert got == [("progress", 3, 4), ("view", "image"), ("other", "its own")]
    assert messages.last_message is None
    worker.fail(worker.submit(DownloadJob()), "<b>disk full</b>")  # sent without on_fail: still shown
    box = messages.last_message
    assert box is not None and box.text() == "<b>disk full</b>" and box.textFormat() == Qt.TextFormat.PlainText
    box.close()


def test_status_text_goes_out_with_its_duration(qtbot):
    messages = Messages()
    with qtbot.waitSignal(messages.status) as blocker:
        messages.show_status("Saved x.png", 5000)
    assert blocker.args == ["Saved x.png", 5000]
