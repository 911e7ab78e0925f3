"""Each answer carries its photo's features and dHash from the one forward pass; the library gives them back only
for unchanged photos; gathering, ranking and grouping real files."""

import os
import shutil

import imagehash
import numpy as np
import pytest
from PIL import Image

from resnext_gui.core.classifier import Classifier
from resnext_gui.core.library import Library, model_key
from resnext_gui.core.similar_photos import gather


@pytest.fixture(scope="module")
def clf(checkpoint):
    return Classifier(checkpoint, device="cpu")


@pytest.fixture
def passes(clf, monkeypatch):
    """Photos the runtime's forward pass computed (every pass, whether run at once or started and collected)."""
    count = {"photos": 0}
    runtime = clf.runtime
    real_infer, real_start = runtime.infer, runtime.start

    def infer(batch):
        count["photos"] += len(batch)
        return real_infer(batch)

    def start(batch):
        count["photos"] += len(batch)
        return real_start(batch)

    monkeypatch.setattr(runtime, "infer", infer)
    monkeypatch.setattr(runtime, "start", start)
    return count


def torchvision_pooled(checkpoint, paths):
    """The pooled last-stage features as torchvision's own network and the weights' own transforms give them."""
    import torch
    from torchvision.models import ResNeXt50_32X4D_Weights, resnext50_32x4d

    model = resnext50_32x4d()
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    trunk = torch.nn.Sequential(*list(model.children())[:-1]).eval()
    transform = ResNeXt50_32X4D_Weights.IMAGENET1K_V2.transforms()
    with torch.inference_mode():
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
        return trunk(batch).flatten(1).numpy()


NAMES = ["chelsea", "astronaut", "coffee", "rocket_jpg"]


def test_features_and_hash_come_from_the_same_decode_and_forward_pass(clf, checkpoint, photos, passes):
    inputs = [photos[n] for n in NAMES]
    preds = list(clf.classify_many(inputs, batch_size=2)) + [clf.classify(photos["chelsea"])]
    assert passes["photos"] == 5  # one pass per photo: the features cost no pass of their own
    expected = torchvision_pooled(checkpoint, inputs + [photos["chelsea"]])
    for pred, path, ref in zip(preds, inputs + [photos["chelsea"]], expected):
        assert pred.ok and pred.features.dtype == np.float16 and pred.features.shape == (2048,)
        assert np.allclose(pred.features.astype(np.float32), ref, rtol=2e-3, atol=2e-4)
        with Image.open(path) as im:
            assert pred.dhash == int(str(imagehash.dhash(im)), 16)
    assert "features" not in preds[0].to_record()  # classify's output is as it was


@pytest.fixture
def album(tmp_path, photos):
    """Three photos, and two copies of the coffee (half size and recompressed, and turned a little), in a folder:
    astronaut.png, chelsea.png, coffee-small.jpg, coffee-turned.jpg, coffee.png."""
    folder = tmp_path / "album"
    folder.mkdir()
    for name in ("chelsea", "astronaut", "coffee"):
        shutil.copy(photos[name], folder / f"{name}.png")
    with Image.open(photos["coffee"]) as im:
        im = im.convert("RGB")
        im.resize((300, 200), Image.Resampling.LANCZOS).save(folder / "coffee-small.jpg", quality=60)
        im.rotate(2, resample=Image.Resampling.BICUBIC).save(folder / "coffee-turned.jpg", quality=90)
    return sorted(folder.iterdir())


def test_a_photo_changed_since_its_vector_was_stored_is_computed_again(clf, album, tmp_path, passes, photos):
    lib = Library(tmp_path / "library.sqlite3")
    first = gather(album, clf, lib)
    assert passes["photos"] == 5 and first.cached == 0 and not first.failures
    passes["photos"] = 0
    again = gather(album, clf, lib)
    assert passes["photos"] == 0 and again.cached == 5  # every vector from the library
    changed = album[1]  # chelsea.png now holds another photo, same name
    assert changed.name == "chelsea.png"
    before = again.vectors[1].features
    st = changed.stat()
    changed.write_bytes(photos["rocket_jpg"].read_bytes())
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    for paths in (album, None):  # the photos named, and the whole library
        passes["photos"] = 0
        found = gather(paths, clf, lib)
        assert passes["photos"] == (1 if paths is not None else 0)  # computed once, then known again
        now = {v.path: v for v in found.vectors}[str(changed)]
        fresh = clf.classify(changed)
        assert np.array_equal(now.features, fresh.features) and now.dhash == fresh.dhash
        assert not np.allclose(now.features.astype(np.float32), before.astype(np.float32), atol=1e-2)
    lib.close()


def test_whole_library_gathers_computes_missing_vectors_and_leaves_out_gone_photos(clf, album, tmp_path, passes):
    lib = Library(tmp_path / "library.sqlite3")
    key = model_key(clf.checkpoint.sha256, clf.preprocessing)
    for path in album:  # answers stored without vectors, as by an earlier version
        pred = clf.classify(path)
        pred.features = pred.dhash = None
        lib.store(path, key, pred)
    album[0].unlink()
    passes["photos"] = 0
    found = gather(None, clf, lib)
    assert passes["photos"] == 4 and found.computed == 4 and found.gone == [str(album[0])]
    assert lib.stored_vectors(key).missing == [str(album[0])]  # the others have theirs now
    passes["photos"] = 0
    assert gather(None, clf, lib).cached == 4 and passes["photos"] == 0
    lib.close()


def test_similar_ranks_copies_first_and_duplicates_choose_the_keeper(clf, album, tmp_path):
    small, turned, original = (str(p) for p in album[2:])
    lib = Library(tmp_path / "library.sqlite3")  # touched files are answered from it: no forward pass again
    found = gather(album, clf, lib)
    ranked = found.similar_to(found.position(original), top=None)
    assert len(ranked) == 4 and original not in [m.path for m in ranked]
    assert {m.path for m in ranked[:2]} == {small, turned}  # its copies first
    assert [m.similarity for m in ranked] == sorted((m.similarity for m in ranked), reverse=True)
    assert [m.path for m in found.similar_to(found.position(original), top=1)] == [ranked[0].path]
    groups = found.duplicates()
    assert len(groups) == 1 and set(groups[0].paths) == {small, turned, original}
    assert 0 < groups[0].similarity <= 1 and groups[0].to_record()["similarity"] == round(groups[0].similarity, 4)
    # the keeper: the most pixels (the half-size copy never), then the newest of the two full-size ones
    os.utime(turned, ns=(0, 10**9))
    os.utime(original, ns=(0, 2 * 10**9))
    group = gather(album, clf, lib).duplicates()[0]
    assert group.keep == group.paths[0] == original
    index = found.index  # the others: most similar to the keeper first
    assert [index.similarity(found.position(original), found.position(p)) for p in group.paths[1:]] == sorted(
        (index.similarity(found.position(original), found.position(p)) for p in group.paths[1:]), reverse=True)
    os.utime(original, ns=(0, 10**9 // 2))
    assert gather(album, clf, lib).duplicates()[0].keep == turned
    os.utime(small, ns=(0, 10**12))  # the newest of all, but fewer pixels
    assert gather(album, clf, lib).duplicates()[0].keep == turned
    lib.close()
