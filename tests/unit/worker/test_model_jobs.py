"""The model's jobs on a running worker: a runtime this build lacks, and a download with no connection."""

from resnext_gui.worker.jobs.model import DownloadJob, LoadJob
from resnext_gui.worker.runner import Worker
from tests.support.ui_fakes import FakeFactory


def test_a_runtime_this_build_lacks_is_loaded_as_automatic_with_one_note(qtbot, tmp_path, monkeypatch):
    from resnext_gui.core import devices

    monkeypatch.setattr(devices, "torch_installed", lambda: False)
    factory = FakeFactory()
    worker = Worker(str(tmp_path / "w.pth"), "cpu", classifier_factory=factory)
    try:
        worker.start()
        with qtbot.waitSignal(worker.finished, timeout=20000) as done:
            worker.submit(LoadJob(worker.first_model.weights, "cpu", backend="torch"))
        info = done.args[1]
        assert factory.options[0]["backend"] == "auto" and info.backend_choice == "auto"
        assert info.note == ("the CPU runtime PyTorch cannot run here: this build of the app has no PyTorch (its "
                             "CPU runtime is OpenVINO). Using Automatic.")
    finally:
        assert worker.stop()


def test_an_offline_download_says_there_is_no_connection_and_what_to_do(qtbot, tmp_path, monkeypatch):
    import socket

    def lookup(*args, **kwargs):  # what the name lookup answers on a computer with no network
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    worker = Worker(str(tmp_path / "w.pth"), "cpu", classifier_factory=FakeFactory())
    try:
        worker.start()
        with qtbot.waitSignal(worker.failed, timeout=20000) as failed:
            worker.submit(DownloadJob())
        job, message = failed.args
        assert isinstance(job, DownloadJob)
        assert message.startswith("This computer has no connection to the internet, so the ImageNet weights could "
                                  "not be downloaded; nothing was saved. Open a weights file you have instead")
        assert "Name or service not known" in message  # the system's own words, for whoever looks closer
    finally:
        assert worker.stop()
