"""The results library on the worker thread (worker/keeper.py): a kept answer comes back as the window's result with
its thumbnail and maps, whatever layer is chosen, many read at once; another layer, another method or image data is
never answered from it for a recomputation; answers of any layer are kept; a photo read back scores exactly as it
did when computed; a failure to keep is said once; the gallery is written only once the library is open."""

import numpy as np
import pytest
from PIL import Image

from resnext_gui.core.faithfulness import eight_bit
from resnext_gui.core.library import Library
from resnext_gui.worker.jobs.photo import photo_result
from resnext_gui.worker.keeper import LibraryKeeper
from tests.support.fakes import FakeClassifier


def tiny_photos(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"p{i:02}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return out


@pytest.fixture
def keeper(tmp_path):
    keeper = LibraryKeeper(tmp_path / "library.sqlite3", 1.0)
    keeper.open()
    yield keeper
    keeper.close()


def test_a_photo_computed_at_another_layer_is_kept_with_its_last_stage_maps_and_answered_whatever_is_chosen(
        keeper, tmp_path):
    clf = FakeClassifier("a.pth", "cpu")
    (path,) = tiny_photos(tmp_path / "photos", 1)
    fresh = photo_result(clf, 1, path, "layer2", "layercam", 1.0, keep=lambda s, p: keeper.keep(clf, s, p))
    assert fresh.ok and fresh.layer == "layer2" and clf.calls == [("p00.png", "layer2")]
    got = keeper.answer(clf, 7, path)  # whatever the window shows, the library answers with what it holds
    assert got is not None and got.cached and got.item_id == 7 and clf.calls == [("p00.png", "layer2")]
    assert (got.layer, got.method) == ("layer4", "gradcam")  # marked as what they are: the stored maps
    assert got.cams.shape == (5, 7, 7) and got.maps.shape == (5, 224, 224) and got.thumb is not None
    assert "cam_method" not in got.record  # the record describes the stored maps, not the layer-2 Layer-CAM


def test_many_photos_are_answered_from_one_read_and_the_unknown_ones_said(keeper, tmp_path, monkeypatch):
    monkeypatch.setattr("resnext_gui.core.library.RACY_NS", 0)  # the files were just written: stamps kept whole
    clf = FakeClassifier("a.pth", "cpu")
    paths = tiny_photos(tmp_path / "photos", 12)
    for i, path in enumerate(paths[:10]):
        photo_result(clf, i, path, "layer4", "gradcam", 1.0, keep=lambda s, p: keeper.keep(clf, s, p))
    one_by_one = []
    real = Library.lookup
    monkeypatch.setattr(Library, "lookup", lambda self, *a, **k: one_by_one.append(a[0]) or real(self, *a, **k))
    got = keeper.answer_many(clf, [(100 + i, p) for i, p in enumerate(paths)])
    assert [r.item_id for r in got if r is not None] == list(range(100, 110)) and got[10:] == [None, None]
    assert one_by_one == paths[10:]  # only the two it has no row for are looked up one by one (their hash)
    assert all(r.thumb is not None and r.cams.shape == (5, 7, 7) for r in got[:10])
    assert len(clf.calls) == 10  # no pass for any of it


def test_a_photo_read_back_from_the_library_gives_the_figures_it_gave_fresh(keeper, checkpoint, photos,
                                                                          shared_model):
    """The same photo, class, map and model: the same faithfulness figures, whether the map was computed now
    (float, at the layer's size) or read back from the library (8 bits), and the same random map beside it."""
    clf = shared_model(str(checkpoint), "cpu", backend="auto", precision="fp32", progress=None)
    path = str(photos["chelsea"])
    fresh = photo_result(clf, 1, path, "layer4", "gradcam", 1.0, keep=lambda s, p: keeper.keep(clf, s, p))
    reopened = keeper.answer(clf, 2, path)
    assert reopened is not None and reopened.cached
    assert reopened.cams is not None and reopened.cams.shape == fresh.cams.shape == (5, 7, 7)
    assert np.array_equal(reopened.cams, eight_bit(fresh.cams))
    top = fresh.top[0].index
    item = clf.prepare(path)
    now = clf.faithfulness(item, top, fresh.cams[0], steps=5)
    back = clf.faithfulness(item, top, reopened.cams[0], steps=5)
    assert back == now
    assert back.sentence("tabby") == now.sentence("tabby")


def test_a_kept_answer_comes_back_as_a_result_and_only_for_the_library_s_map(qtbot, tmp_path, photos):
    keeper = LibraryKeeper(tmp_path / "library.sqlite3", pixel_ratio=2.0)
    keeper.open()
    clf = FakeClassifier("w.pth", "cpu")
    path = str(photos["coffee"])
    pred = clf.classify(path, keep_image=True)
    assert keeper.answer(clf, 7, path, "layer4", "gradcam") is None  # not kept yet
    assert keeper.keep(clf, path, pred) is None
    res = keeper.answer(clf, 7, path, "layer4", "gradcam")
    assert res is not None and res.cached and res.item_id == 7 and [t.label for t in res.top] == [t.label for t in pred.top]
    assert res.maps is not None and res.maps.shape == (5, 224, 224) and res.thumb is not None
    assert res.thumb.devicePixelRatio() == 2.0 and max(res.thumb.width(), res.thumb.height()) == 192
    assert keeper.answer(clf, 7, path, "layer3", "gradcam") is None  # another stage: computed, never the stored map
    assert keeper.answer(clf, 7, path, "layer4", "eigencam") is None
    assert keeper.answer(clf, 7, photos["coffee"].read_bytes(), "layer4", "gradcam") is None  # image data: no file
    other = FakeClassifier("w.pth", "cpu")
    other.checkpoint.sha256 = "1" * 64  # another model: its own answers
    assert keeper.answer(other, 7, path, "layer4", "gradcam") is None
    keeper.close()


def test_a_failure_to_keep_is_said_once_and_the_gallery_waits_for_the_library(qtbot, tmp_path, photos, monkeypatch):
    keeper = LibraryKeeper(tmp_path / "library.sqlite3", pixel_ratio=1.0)
    keeper.keep_gallery([str(photos["coffee"])])
    keeper.flush()  # not open yet: the gallery waits, it is not lost
    keeper.open()
    clf = FakeClassifier("w.pth", "cpu")
    pred = clf.classify(str(photos["coffee"]), keep_image=True)

    monkeypatch.setattr(keeper.lib, "store", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    assert keeper.keep(clf, str(photos["coffee"]), pred) == "Not kept in the results library: disk full"
    assert keeper.keep(clf, str(photos["chelsea"]), pred) is None  # said once
    keeper.close()  # writes the gallery kept before it opened
    with Library(tmp_path / "library.sqlite3") as lib:
        assert lib.gallery() == [str(photos["coffee"])]
