"""One writer, one set of columns: the window's Export and `classify --format csv` write the same CSV for the same
answers (a map of another method than Grad-CAM, and the faithfulness figures, included)."""

import csv
import io
import json

from resnext_gui.core.prediction import TopClass
from resnext_gui.ui.controller import BatchController, ModelState
from resnext_gui.ui.gallery import GalleryModel
from resnext_gui.ui.messages import Messages
from resnext_gui.worker.jobs.photo import ClassifyJob
from resnext_gui.worker.results import PhotoResult
from tests.support.helpers import run_cli
from tests.support.ui_fakes import FakeWorker


def test_the_window_s_export_and_classify_write_the_same_csv(qtbot, checkpoint, photos, tmp_path):
    args = ["--weights", checkpoint, "--cam-method", "eigencam", "--faithfulness", photos["coffee"]]
    lines = run_cli("classify", *args)
    table = run_cli("classify", "--format", "csv", *args)
    assert lines.returncode == 0 and table.returncode == 0, lines.stderr + table.stderr
    (record,) = [json.loads(line) for line in lines.stdout.splitlines()]
    assert record["cam_method"] == "eigencam" and "deletion_auc" in record["faithfulness"]

    # the window, holding the same answer, exports it
    worker, photos_model = FakeWorker(), GalleryModel()
    controller = BatchController(photos_model, worker, Messages(), lambda: None)
    controller.set_model_state(ModelState.READY)
    controller.enqueue([(str(photos["coffee"]), str(photos["coffee"]))])
    (job,) = worker.of(ClassifyJob)
    top = [TopClass(t["rank"], t["index"], t["label"], t["prob"]) for t in record["top"]]
    worker.answer(job, PhotoResult(job.item_id, True, record["path"], top=top, method="eigencam", record=record))
    qtbot.waitUntil(lambda: photos_model.records() != [])
    out = tmp_path / "export.csv"
    assert controller.export_results(str(out), "csv")

    exported = list(csv.reader(io.StringIO(out.read_text())))
    printed = list(csv.reader(io.StringIO(table.stdout)))
    assert exported[0] == printed[0]  # the same columns, in the same order
    assert "cam_method" in exported[0] and "faithfulness.method" in exported[0] and "faithfulness.deletion_auc" in exported[0]
    timing = {exported[0].index("ms")}
    assert [c for i, c in enumerate(exported[1]) if i not in timing] == [c for i, c in enumerate(printed[1]) if i not in timing]
