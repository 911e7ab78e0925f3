"""The Classifier streams answers in input order, survives bad files, batches consistently, falls back on OOM."""

import numpy as np
import pytest

from resnext_gui.core.classifier import Classifier
from tests.support.helpers import PHOTO_CLASSES, device_without_memory


@pytest.fixture(scope="module")
def clf(checkpoint):
    return Classifier(checkpoint, device="cpu")


def test_stream_keeps_input_order_with_failures_between(clf, photos, tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    inputs = [photos["chelsea"], junk, photos["astronaut"], tmp_path / "missing.png", photos["coffee"]]
    for batch_size in (1, 2, 4):
        preds = list(clf.classify_many(inputs, batch_size=batch_size))
        assert [p.path for p in preds] == [str(p) for p in inputs]
        assert [p.ok for p in preds] == [True, False, True, False, True]
        assert [p.top[0].label for p in preds if p.ok] == ["tabby", "suit", "espresso"]  # each its own answer
        assert "not an image" in preds[1].error and "does not exist" in preds[3].error


def test_batched_results_match_single(clf, photos):
    inputs = [photos[n] for n in ("chelsea", "astronaut", "coffee", "rocket_jpg")]
    single = [clf.classify(p) for p in inputs]
    batched = list(clf.classify_many(inputs, batch_size=4))
    assert [p.top[0].index for p in batched] == [PHOTO_CLASSES[n] for n in ("chelsea", "astronaut", "coffee", "rocket")]
    for a, b in zip(single, batched):
        # the runners-up share the last 1% of probability: their order is float noise, their values are not
        assert a.top[0].index == b.top[0].index and a.top[0].prob == pytest.approx(b.top[0].prob, rel=1e-4)
        assert [t.prob for t in a.top] == pytest.approx([t.prob for t in b.top], abs=1e-5)
        assert np.allclose(a.cams[0], b.cams[0], atol=1e-4)


def test_prediction_fields(clf, photos):
    pred = clf.classify(photos["chelsea"])
    assert pred.ok and pred.device == "cpu" and pred.layer == "layer4"
    assert (pred.top[0].index, pred.top[0].label) == (281, "tabby") and pred.top[0].prob > 0.9
    assert [t.rank for t in pred.top] == [1, 2, 3, 4, 5]
    probs = [t.prob for t in pred.top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    assert pred.top[0].label == clf.labels[pred.top[0].index]
    assert pred.cams.dtype == np.float32 and pred.cams.shape == (5, 7, 7)
    assert pred.cams.min() >= 0 and pred.cams.max() == pytest.approx(1)
    assert pred.ms > 0 and pred.image_size == (451, 300)
    assert clf.classify(photos["chelsea"], layer="layer3").cams.shape == (5, 14, 14)


def test_bytes_input(clf, photos):
    pred = clf.classify(photos["coffee"].read_bytes())
    assert pred.ok and pred.path == "pasted image" and pred.top[0].label == "espresso"
    assert not clf.classify(b"").ok


def test_cancel_stops_the_stream(clf, photos):
    seen = []
    inputs = [photos["chelsea"]] * 6
    for pred in clf.classify_many(inputs, cancelled=lambda: len(seen) >= 2):
        seen.append(pred)
    assert len(seen) == 2


def test_device_out_of_memory_falls_back_to_cpu_with_a_note(checkpoint, photos):
    clf = Classifier(checkpoint, device="cpu", backend="torch")
    device_without_memory(clf)
    preds = list(clf.classify_many([photos["chelsea"], photos["coffee"]], batch_size=2))
    assert all(p.ok and p.device == "cpu" for p in preds)
    assert [p.top[0].index for p in preds] == [PHOTO_CLASSES["chelsea"], PHOTO_CLASSES["coffee"]]
    assert all("ran out of memory" in p.note for p in preds)


@pytest.fixture(scope="module")
def phone_photos(tmp_path_factory):
    """12-megapixel JPEGs made from real photos, as in the benchmark."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("phone")
    out = []
    for name in ("astronaut", "rocket", "chelsea"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).resize((4000, 3000), Image.Resampling.BICUBIC).save(path, quality=90)
        out.append(path)
    return out


@pytest.mark.slow
def test_fast_decode_keeps_the_full_decode_answer(checkpoint, phone_photos):
    fast = Classifier(checkpoint, device="cpu", fast_decode=True)
    full = Classifier(checkpoint, device="cpu", fast_decode=False)
    for path in phone_photos:
        a, b = fast.classify(path, keep_image=True), full.classify(path, keep_image=True)
        assert a.top[0].index == b.top[0].index == PHOTO_CLASSES[path.stem], path.name
        assert a.top[0].prob == pytest.approx(b.top[0].prob, abs=0.05)
        # the JPEG decoder itself scaled it down (the cheap path), keeping the shorter side >= 2 x 232
        assert b.image.size == (4000, 3000) and a.image.size[1] < 3000 and min(a.image.size) >= 464


@pytest.mark.parametrize("workers", [0, 1])
def test_inline_and_threaded_decoding_agree(clf, photos, workers, tmp_path):
    clf.decode_workers = workers
    try:
        junk = tmp_path / "junk.png"
        junk.write_bytes(b"\x89PNG nope")
        preds = list(clf.classify_many([photos["coffee"], junk, photos["chelsea"]], batch_size=2))
    finally:
        clf.decode_workers = None
    assert [p.ok for p in preds] == [True, False, True]
    reference = [clf.classify(photos["coffee"]), clf.classify(photos["chelsea"])]
    for got, ref in zip([preds[0], preds[2]], reference):
        assert got.top[0].index == ref.top[0].index and got.top[0].prob > 0.9
        assert [t.prob for t in got.top] == pytest.approx([t.prob for t in ref.top], abs=1e-5)
        assert np.allclose(got.cams[0], ref.cams[0], atol=1e-4)


def test_long_thin_images_are_refused_before_decoding(clf, tmp_path):
    """A 1x20000 PNG is 165 bytes, but scaled for the model it would be 232 x 4.6 million pixels."""
    from PIL import Image

    from resnext_gui.core.preprocess import MAX_ASPECT

    tall, wide = tmp_path / "tall.png", tmp_path / "wide.png"
    Image.new("L", (1, 20000)).save(tall)
    Image.new("L", (20000, 1)).save(wide)
    assert tall.stat().st_size < 1000
    for path in (tall, wide):
        pred = clf.classify(path)
        assert not pred.ok and f"more than {MAX_ASPECT} times longer than wide" in pred.error
    ok = tmp_path / "sliver.png"  # 1:300 is within the bound and still classified
    Image.new("RGB", (3, 900), (90, 120, 30)).save(ok)
    assert clf.classify(ok).ok


@pytest.mark.parametrize("workers,batch_size", [(0, 1), (1, 2), (1, 4)])
def test_any_exception_while_preparing_is_that_files_answer(clf, photos, tmp_path, monkeypatch, workers, batch_size):
    import resnext_gui.core.classifier as C

    real = C.load_and_prepare
    raises = {"mem.png": MemoryError(), "value.png": ValueError("bad palette"), "io.png": OSError(5, "I/O error")}

    def flaky(source, *args, **kwargs):
        exc = raises.get(getattr(source, "name", ""))
        if exc is not None:
            raise exc
        return real(source, *args, **kwargs)

    monkeypatch.setattr(C, "load_and_prepare", flaky)
    monkeypatch.setattr(clf, "decode_workers", workers)
    inputs = [photos["coffee"], tmp_path / "mem.png", photos["chelsea"], tmp_path / "value.png", tmp_path / "io.png",
              photos["astronaut"]]
    preds = list(clf.classify_many(inputs, batch_size=batch_size))
    assert [p.path for p in preds] == [str(p) for p in inputs]
    assert [p.ok for p in preds] == [True, False, True, False, False, True]
    assert "not enough memory" in preds[1].error
    assert "ValueError: bad palette" in preds[3].error and "I/O error" in preds[4].error
    single = clf.classify(tmp_path / "mem.png")
    assert not single.ok and "not enough memory" in single.error


@pytest.fixture(scope="module")
def streams(checkpoint):
    """The Classifier ``classify`` uses for a folder: OpenVINO's streams, several passes under way."""
    return Classifier(checkpoint, device="cpu", tuned_for="throughput")


def test_a_folder_through_the_streams_answers_as_one_photo_at_a_time(clf, streams, photos, tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    inputs = [photos["chelsea"], junk, photos["astronaut"], photos["coffee"], tmp_path / "missing.png",
              photos["rocket_jpg"], photos["chelsea"]]
    alone = [clf.classify(p) for p in inputs]
    assert streams.default_batch_size == (1 if streams.runtime.parallel > 1 else 8)
    for batch_size in (1, 2, 3):
        streamed = list(streams.classify_many(inputs, batch_size=batch_size))
        assert [p.path for p in streamed] == [str(p) for p in inputs]
        assert [p.ok for p in streamed] == [a.ok for a in alone] == [True, False, True, True, False, True, True]
        assert streamed[1].error == alone[1].error and streamed[4].error == alone[4].error
        for a, b in zip(alone, streamed):
            if a.ok:
                assert a.top[0].index == b.top[0].index and a.top[0].prob == pytest.approx(b.top[0].prob, rel=1e-4)
                assert [t.prob for t in a.top] == pytest.approx([t.prob for t in b.top], abs=1e-5)
                assert np.allclose(a.cams, b.cams, atol=1e-4)


class _Counted:
    """A pass under way, counted until its answer is taken."""

    def __init__(self, pending, live, most):
        self.pending, self.live, self.most = pending, live, most
        live.add(self)
        most.append(len(live))

    def done(self):
        return self.pending.done()

    def result(self):
        self.live.discard(self)
        return self.pending.result()


def test_the_streams_keep_their_passes_under_way_together(streams, photos, monkeypatch):
    runtime = streams.runtime
    if runtime.parallel < 2:
        pytest.skip("OpenVINO runs one stream on this machine")
    real, live, most = runtime.start, set(), []
    monkeypatch.setattr(runtime, "start", lambda batch: _Counted(real(batch), live, most))
    names = ["chelsea", "coffee", "astronaut", "rocket_jpg"] * 2
    preds = list(streams.classify_many([photos[n] for n in names], batch_size=1))
    assert [p.top[0].index for p in preds] == [PHOTO_CLASSES[n.removesuffix("_jpg")] for n in names]
    assert len(most) == len(names) and max(most) == runtime.parallel and not live


def test_a_pass_that_fails_is_computed_again_the_careful_way(streams, photos, monkeypatch):
    from resnext_gui.core.errors import BackendError
    from resnext_gui.core.runtimes import Pending

    runtime, calls = streams.runtime, []
    real = runtime.start

    def fail():
        raise BackendError("OpenVINO failed while running the model")

    def second_fails(batch):
        calls.append(len(batch))
        return Pending.now(fail) if len(calls) == 2 else real(batch)

    monkeypatch.setattr(runtime, "start", second_fails)
    names = ["chelsea", "astronaut", "coffee"]
    preds = list(streams.classify_many([photos[n] for n in names], batch_size=1))
    assert len(calls) == 3 and [p.top[0].index for p in preds] == [PHOTO_CLASSES[n] for n in names]
    assert all(p.ok for p in preds) and streams.backend == "openvino"


def test_cancelling_the_streams_leaves_them_ready_for_the_next_run(streams, photos):
    answered = []
    for pred in streams.classify_many([photos["chelsea"]] * 8, cancelled=lambda: len(answered) >= 2):
        answered.append(pred)
    assert 2 <= len(answered) < 8
    preds = list(streams.classify_many([photos["coffee"], photos["astronaut"], photos["chelsea"]]))
    assert [p.top[0].index for p in preds] == [PHOTO_CLASSES[n] for n in ("coffee", "astronaut", "chelsea")]


def test_queued_photos_keep_only_their_tensor(clf, photos, monkeypatch):
    seen = []
    real = clf._batch

    def spy(items):  # what reaches the network
        seen.extend(item.decoded.image for item in items)
        return real(items)

    monkeypatch.setattr(clf, "_batch", spy)
    inputs = [photos["coffee"], photos["chelsea"], photos["astronaut"]]
    preds = list(clf.classify_many(inputs, batch_size=2))
    assert len(seen) == 3 and all(image is None for image in seen)
    assert all(p.ok and p.image is None for p in preds)
    seen.clear()
    preds = list(clf.classify_many(inputs, batch_size=2, keep_images=True))
    assert len(seen) == 3 and all(image is not None for image in seen)
    assert all(p.image is not None for p in preds)


def test_huge_batch_size_is_clamped(clf, tmp_path, monkeypatch):
    from PIL import Image

    from resnext_gui.core.classifier import MAX_BATCH
    from resnext_gui.core.runtimes import Pending

    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(small)
    batches = []

    def fake_start(batch):  # the model is not what is tested here
        batches.append(len(batch))
        n = len(batch)
        return Pending.now(lambda: (np.zeros((n, 2048, 7, 7), np.float32), np.zeros((n, clf.num_classes), np.float32)))

    monkeypatch.setattr(clf.runtime, "start", fake_start)
    preds = list(clf.classify_many([small] * (MAX_BATCH + 6), batch_size=300))
    assert len(preds) == MAX_BATCH + 6 and all(p.ok for p in preds)
    assert max(batches) == MAX_BATCH


def test_non_finite_scores_are_never_reported(checkpoint, photos):
    import json

    clf = Classifier(checkpoint, device="cpu", backend="torch")  # edits the PyTorch network in place
    clf.runtime.model.fc.bias.fill_(float("inf"))  # a model that overflows (load refuses such files)
    pred = clf.classify(photos["coffee"])
    assert not pred.ok and "not finite" in pred.error
    record = pred.to_record()
    json.dumps(record, allow_nan=False)
    preds = list(clf.classify_many([photos["coffee"], photos["chelsea"]], batch_size=2))
    assert not any(p.ok for p in preds) and all("not finite" in p.error for p in preds)


def test_a_photo_with_non_finite_scores_fails_alone_in_its_batch(checkpoint, photos):
    import json
    import math

    from resnext_gui.core.runtimes import Pending

    clf = Classifier(checkpoint, device="cpu")
    real = clf.runtime.infer

    def second_overflows(batch):
        feats, logits = real(batch)
        logits = logits.copy()
        logits[1, 7] = np.nan  # the second photo's scores only
        return feats, logits

    clf.runtime.start = lambda batch: Pending.now(lambda: second_overflows(batch))
    preds = list(clf.classify_many([photos["coffee"], photos["chelsea"], photos["astronaut"]], batch_size=3))
    assert [p.ok for p in preds] == [True, False, True] and "not finite" in preds[1].error
    finite = [t.prob for p in preds if p.ok for t in p.top]
    assert len(finite) == 10 and all(math.isfinite(x) and 0 <= x <= 1 for x in finite)
    for p in preds:
        json.dumps(p.to_record(), allow_nan=False)


def test_an_answer_with_another_layer_or_method_carries_the_last_stage_grad_cam_for_the_library(clf, photos):
    """What the results library keeps comes with every answer: the last stage's Grad-CAM of the same top classes,
    from the same forward pass, whatever maps were asked for."""
    plain = clf.classify(photos["chelsea"])
    assert plain.last_stage_cams is None  # its maps are those already
    for layer, method in (("layer3", "gradcam"), ("layer2", "layercam"), ("layer4", "eigencam")):
        other = clf.classify(photos["chelsea"], layer=layer, method=method)
        assert [t.index for t in other.top] == [t.index for t in plain.top]
        assert other.last_stage_cams.shape == (5, 7, 7) and other.last_stage_cams.dtype == np.float32
        assert np.allclose(other.last_stage_cams, plain.cams, atol=1e-5)


def test_a_checkpoint_read_elsewhere_builds_the_same_classifier(clf, checkpoint, photos, tmp_path, monkeypatch):
    """A cluster's node gets the driver's Checkpoint through Ray's object store (pickled), not the file: the
    Classifier built from it reads no file and answers as the one built from the file."""
    import pickle
    import shutil

    from resnext_gui.core import classifier as C
    from resnext_gui.core.checkpoint import read_checkpoint
    from resnext_gui.core.weights import find_weights

    copy = shutil.copy(checkpoint, tmp_path / "ckpt.pth")
    travelled = pickle.loads(pickle.dumps(read_checkpoint(find_weights(copy)), protocol=5))
    (tmp_path / "ckpt.pth").unlink()  # the node has no copy of the file
    monkeypatch.setattr(C, "read_checkpoint", lambda *a: pytest.fail("read the checkpoint again"))
    node = Classifier(travelled, device="cpu")
    assert node.checkpoint is travelled and node.preprocessing == clf.preprocessing
    here, there = clf.classify(photos["coffee"]), node.classify(photos["coffee"])
    assert there.ok and there.to_record()["top"] == here.to_record()["top"]
    assert np.allclose(there.cams, here.cams, atol=1e-6)
