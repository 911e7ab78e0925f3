"""The results library on the worker thread (worker/keeper.py): a kept answer comes back as the window's result with
its thumbnail and maps; another layer, another method or image data is never answered from it; a failure to keep is
said once; the gallery is written only once the library is open."""


from resnext_gui.worker.keeper import LibraryKeeper
from tests.support.fakes import FakeClassifier


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
    from resnext_gui.core.library import Library

    with Library(tmp_path / "library.sqlite3") as lib:
        assert lib.gallery() == [str(photos["coffee"])]
