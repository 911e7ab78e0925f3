"""Teaching new classes: a small data set made from the test photos, trained, checked, reloaded and explained."""

import json
import os
import shutil
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from resnext_gui.core import train as T
from resnext_gui.core.classifier import Classifier
from resnext_gui.core.errors import NoWeightsError
from tests.support.fakes import FakeClassifier
from tests.support.helpers import head_loss, run_cli, torch_fit_head

pytestmark = pytest.mark.slow  # teaching runs: features of dozens of photos, seconds each

CLASSES = ("chelsea", "astronaut", "coffee", "rocket_jpg")
PER_CLASS = 8
SIDE = 80  # small photos keep the test fast; the model scales them up to its input anyway
VAL_ACCURACY_BOUND = 0.75  # 8 validation photos, 4 classes: chance is 0.25


def variant(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (50-90% of each side), maybe mirrored, with jittered colour and brightness."""
    w, h = photo.size
    s = rng.uniform(0.5, 0.9)
    cw, ch = int(w * s), int(h * s)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = photo.crop((x, y, x + cw, y + ch)).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.6, 1.4))
    return ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))


def make_dataset(root: Path, photos: dict, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        source = Image.open(photos[name]).convert("RGB")
        folder = root / name.replace("_jpg", "")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            variant(source, rng).save(folder / f"{seed}-{i:02}.png")
    return root


class Counting:
    """Wraps a Classifier's ``pooled_features`` (the one place features are computed) to count photos."""

    def __init__(self, clf: Classifier) -> None:
        self.clf, self.photos = clf, 0
        real = clf.pooled_features

        def counted(items):
            self.photos += len(items)
            return real(items)

        clf.pooled_features = counted


@pytest.fixture(scope="module")
def taught(tmp_path_factory, photos, checkpoint):
    """One training run on the seeded checkpoint (a user checkpoint file, see require_real_weights)."""
    base = tmp_path_factory.mktemp("teach")
    data = make_dataset(base / "data", photos, PER_CLASS, seed=1)
    (data / "coffee" / "notes.txt").write_text("not a photo")
    (data / "coffee" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    clf = Classifier(checkpoint, device="cpu")
    counter = Counting(clf)
    cache = base / "cache"
    result = T.train(clf, data, val_fraction=0.25, seed=0, cache_dir=cache)
    model = T.save(clf, result, base / "out" / "mine.safetensors")
    return SimpleNamespace(base=base, data=data, clf=clf, counter=counter, cache=cache, result=result, model=model,
                           first_computed=counter.photos)


def test_training_learns_the_classes(taught):
    r = taught.result
    assert r.labels == ["astronaut", "chelsea", "coffee", "rocket"]
    assert r.counts == [PER_CLASS] * 4
    assert r.validation["photos"] == 8  # 25% of 8 per class
    assert r.validation["accuracy"] >= VAL_ACCURACY_BOUND
    conf = np.zeros((4, 4), int)
    for (t, p), n in T.confusion_matrix(r.validation, r.labels).items():
        conf[t, p] = n
    assert conf.sum() == 8 and conf.sum(axis=1).tolist() == [2, 2, 2, 2]
    assert np.trace(conf) / 8 == pytest.approx(r.validation["accuracy"])
    assert set(r.validation["per_class"]) == set(r.labels)
    assert len(r.mistakes) == 8 - np.trace(conf)
    # bad files were counted and skipped, not fatal
    assert [p.name for p, _ in r.unreadable] == ["broken.jpg"]
    assert any("not an image by name" in w for w in r.warnings)
    assert any("fewer than 10 photos" in w for w in r.warnings)


def test_shuffled_labels_stay_near_chance(taught):
    """The control: the same features with labels shuffled among photos can't be learnt beyond chance."""
    clf = taught.clf
    data = T.scan(taught.data)
    feats = T.extract(clf, data, T.FeatureCache(taught.cache, T.backbone_sha256(clf)))
    accuracies = []
    for seed in range(8):
        y = np.random.default_rng(seed).permutation(feats.labels)
        train, val = T.split(y, 0.25, seed)
        w, b = T.fit_head(feats.feats[train].reshape(-1, T.FEATURE_DIM), np.repeat(y[train], 2), 4)
        pred = T.predict_proba(w, b, feats.feats[val, 0]).argmax(1)
        accuracies.append(float((pred == y[val]).mean()))
    assert np.mean(accuracies) <= 0.45  # chance is 0.25; the true labels reach VAL_ACCURACY_BOUND or more
    # and the true labels, over the same splits, do far better
    true = []
    for seed in range(8):
        train, val = T.split(feats.labels, 0.25, seed)
        w, b = T.fit_head(feats.feats[train].reshape(-1, T.FEATURE_DIM), np.repeat(feats.labels[train], 2), 4)
        true.append(float((T.predict_proba(w, b, feats.feats[val, 0]).argmax(1) == feats.labels[val]).mean()))
    assert np.mean(true) >= VAL_ACCURACY_BOUND


def test_the_numpy_fit_matches_torch_lbfgs_on_real_features(taught):
    """The head of the teaching run against torch.optim.LBFGS on the same features: same loss, same answers."""
    clf = taught.clf
    feats = T.extract(clf, T.scan(taught.data), T.FeatureCache(taught.cache, T.backbone_sha256(clf)))
    train, val = T.split(feats.labels, 0.25, 0)
    x, y = feats.feats[train].reshape(-1, T.FEATURE_DIM), np.repeat(feats.labels[train], 2)
    reference = torch_fit_head(x, y, 4, T.L2)
    assert head_loss(taught.result.weight, x, y, T.L2) == pytest.approx(head_loss(reference, x, y, T.L2), rel=1e-4)
    zeros = np.zeros(4, np.float32)
    for rows in (feats.feats[train, 0], feats.feats[val, 0]):
        assert np.array_equal(T.predict_proba(taught.result.weight, zeros, rows).argmax(1),
                              T.predict_proba(reference, zeros, rows).argmax(1))


def test_models_are_saved_as_safetensors_only(taught, tmp_path):
    for name in ("model.pth", "model.pt", "model"):
        with pytest.raises(T.TrainingError, match=r"safetensors format.*model\.safetensors"):
            T.save(taught.clf, taught.result, tmp_path / name)
        with pytest.raises(T.TrainingError, match="safetensors format"):
            T.copy_model(taught.model, tmp_path / name)
    assert not list(tmp_path.iterdir())
    copied = T.copy_model(taught.model, tmp_path / "copy.safetensors")
    assert copied.read_bytes() == taught.model.read_bytes()
    models = tmp_path / "models"
    models.mkdir()
    old = [models / f"taught-2020010{i}-000000-000000{'.pth' if i % 2 else '.safetensors'}" for i in range(1, 8)]
    for path in old:
        path.write_bytes(b"x")
    fresh = T.new_model_path(models)
    assert fresh.suffix == ".safetensors" and fresh.name.startswith("taught-")
    assert sorted(models.iterdir()) == old[-(T.KEEP_MODELS - 1):]  # the newest few kept, whatever their format


def test_the_cache_makes_a_second_run_near_instant(taught):
    """Counted, not timed: the second run computes nothing; new photos and a damaged entry are all it computes."""
    n = 4 * PER_CLASS
    assert taught.first_computed == n
    before = taught.counter.photos
    again = T.train(taught.clf, taught.data, val_fraction=0.25, seed=0, cache_dir=taught.cache)
    assert taught.counter.photos - before == 0 and again.computed == 0 and again.cache_hits == n
    assert again.validation == taught.result.validation  # same features, same split, same head
    # a few more photos: only they go through the network
    more = taught.base / "more"
    shutil.copytree(taught.data, more)
    for i, name in enumerate(("astronaut", "chelsea")):
        Image.open(next((more / name).glob("*.png"))).rotate(90 + i).save(more / name / "new.png")
    entry = next(taught.cache.rglob("*.feat"))
    entry.write_bytes(b"damaged")
    before = taught.counter.photos
    third = T.train(taught.clf, more, val_fraction=0.25, seed=0, cache_dir=taught.cache)
    assert third.computed == 3 and taught.counter.photos - before == 3  # two new photos + the damaged entry
    assert third.cache_hits == n + 2 - 3
    assert not list(taught.cache.rglob("*.partial"))


def test_swapped_cache_entries_leave_the_labels_and_accuracy_as_they_were(taught, tmp_path):
    """Two classes' cached features swapped on disk (the file of a chelsea photo holds an astronaut photo's, and
    back): each entry says which photo it belongs to, so both are recomputed and nothing is learnt wrong."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(taught.cache, cache_dir)
    cache = T.FeatureCache(cache_dir, T.backbone_sha256(taught.clf))
    first, second = (cache._path(T.file_sha256(sorted((taught.data / c).glob("*.png"))[0])) for c in ("chelsea", "astronaut"))
    first_bytes, second_bytes = first.read_bytes(), second.read_bytes()
    first.write_bytes(second_bytes)
    second.write_bytes(first_bytes)
    again = T.train(taught.clf, taught.data, val_fraction=0.25, seed=0, cache_dir=cache_dir)
    assert again.computed == 2 and again.cache_hits == 4 * PER_CLASS - 2
    assert again.labels == taught.result.labels and again.counts == taught.result.counts
    assert again.validation["accuracy"] == taught.result.validation["accuracy"]
    assert again.validation["per_class"] == taught.result.validation["per_class"]
    assert again.validation["confused"] == taught.result.validation["confused"]
    assert first.read_bytes() == first_bytes and second.read_bytes() == second_bytes  # rewritten as they were


def test_saved_model_reloads_and_classifies_held_out_crops(taught, photos, tmp_path):
    held_out = make_dataset(tmp_path / "held", photos, 2, seed=7)
    files = sorted(held_out.rglob("*.png"))
    proc = run_cli("classify", "--weights", taught.model, "--device", "cpu", "--topk", "4", *files)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == len(files)
    right = sum(rec["top"][0]["label"] == Path(rec["path"]).parent.name for rec in records)
    assert right >= 7  # of 8 held-out crops
    from safetensors import safe_open

    with safe_open(str(taught.model), framework="np") as saved:
        meta = saved.metadata()
        assert saved.get_tensor("fc.weight").tobytes() == taught.result.weight.tobytes()
        backbone = saved.get_tensor("layer4.2.conv3.weight")
        shapes = {k: tuple(saved.get_slice(k).get_shape()) for k in saved.keys()}
    import torch
    from torchvision.models import resnext50_32x4d

    base = torch.load(taught.clf.source.path, weights_only=True)  # the backbone it was taught on, read by torch
    expected = {k: tuple(v.shape) for k, v in resnext50_32x4d(num_classes=4).state_dict().items() if k in base or k.startswith("fc.")}
    assert shapes == expected  # every tensor of torchvision's network with 4 classes; 0-d counters stay 0-d
    assert np.array_equal(backbone, base["layer4.2.conv3.weight"].numpy())
    assert json.loads(meta["labels"]) == taught.result.labels
    prov = json.loads(meta["provenance"])
    assert prov["base_weights"]["sha256"] == T.file_sha256(taught.clf.source.path)
    assert prov["classes"] == dict(zip(taught.result.labels, taught.result.counts, strict=True))
    assert prov["validation"]["accuracy"] == taught.result.validation["accuracy"]
    assert prov["date"]


def test_gradcam_of_the_new_classes_exists_and_differs(taught, photos):
    clf = Classifier(taught.model, device="cpu", topk=4)
    pred = clf.classify(photos["chelsea"])
    assert pred.ok and pred.cams.shape == (4, 7, 7)
    assert pred.top[0].label == "chelsea"
    assert np.isfinite(pred.cams).all() and pred.cams[0].max() == pytest.approx(1.0)
    # Grad-CAM keeps positive evidence only: a class with none anywhere has an empty map; the others differ
    shown = [m for m in pred.cams if m.max() > 0]
    assert len(shown) >= 2
    for a in range(len(shown)):
        for b in range(a + 1, len(shown)):
            assert np.abs(shown[a] - shown[b]).max() > 0.05
    _, maps = T.explain(taught.clf, taught.result, photos["chelsea"], [1, 0])
    assert np.allclose(maps[0], pred.cams[[t.index for t in pred.top].index(1)], atol=1e-4)


def test_cli_train_summary_and_exit_codes(taught, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    cache_dst = tmp_path / "xdg" / "resnext-gui"
    shutil.copytree(taught.cache, cache_dst)  # the features are already known: the CLI only fits
    out = tmp_path / "cli.safetensors"
    proc = run_cli("train", taught.data, "--out", out, "--weights", taught.clf.source.path, "--device", "cpu",
                   "--val-fraction", "0.25", "--seed", "0", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["classes"] == taught.result.labels
    assert summary["validation"]["confused"] == taught.result.validation["confused"]
    assert summary["validation"]["per_class"] == taught.result.validation["per_class"]
    assert summary["features"] == {**summary["features"], "computed": 0, "cached": 4 * PER_CLASS}
    assert out.is_file() and "validation accuracy" in proc.stderr
    # no weights at all: refused, saying how to get them
    proc = run_cli("train", taught.data, "--out", tmp_path / "x.safetensors", env=env)
    assert proc.returncode == 2 and "weights fetch" in proc.stderr and not (tmp_path / "x.safetensors").exists()
    # another format asked for: refused before any work, with the name to use
    proc = run_cli("train", taught.data, "--out", tmp_path / "x.pth", "--weights", taught.clf.source.path, env=env)
    assert proc.returncode == 2 and "safetensors format" in proc.stderr and "x.safetensors" in proc.stderr
    assert "loading the model" not in proc.stderr and not (tmp_path / "x.pth").exists()
    # a single class: refused
    one = tmp_path / "one"
    shutil.copytree(taught.data / "coffee", one / "coffee")
    proc = run_cli("train", one, "--out", tmp_path / "y.safetensors", "--weights", taught.clf.source.path, env=env)
    assert proc.returncode == 2 and "at least two classes" in proc.stderr


# ---- bad input, with a stand-in backbone (what the data handling does doesn't depend on the numbers) ----
def folder_of(root: Path, spec: dict, photo: Path) -> Path:
    base = Image.open(photo).convert("RGB").resize((48, 48))
    root.mkdir(parents=True, exist_ok=True)
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            ImageEnhance.Brightness(base).enhance(0.5 + 0.1 * i + 0.01 * sum(map(ord, cls)) % 0.1).save(root / cls / f"{i}.png")
    return root


def test_refusals(tmp_path, photos):
    with pytest.raises(T.TrainingError, match="not a folder"):
        T.scan(tmp_path / "missing")
    with pytest.raises(T.TrainingError, match="at least two classes.*found none"):
        T.scan(folder_of(tmp_path / "empty", {}, photos["coffee"]))
    with pytest.raises(T.TrainingError, match="at least two classes.*'cats'"):
        T.scan(folder_of(tmp_path / "one", {"cats": 3}, photos["coffee"]))
    with pytest.raises(T.TrainingError, match=r"at least 2 photos.*'dogs' \(1\)"):
        T.scan(folder_of(tmp_path / "small", {"cats": 3, "dogs": 1}, photos["coffee"]))
    with pytest.raises(T.TrainingError, match="would both be the class 'a b'"):
        T.scan(folder_of(tmp_path / "clash", {"a b": 2, "a  b": 2}, photos["coffee"]))


def test_no_weights_is_refused_before_any_work(tmp_path, photos):
    """The app's only untrained network is the one it never builds: no weights file means a refusal."""
    with pytest.raises(NoWeightsError, match="weights fetch"):
        Classifier(None, device="cpu")
    fake = FakeClassifier(tmp_path / "gone.pth", "cpu")
    with pytest.raises(T.TrainingError, match="(?s)real backbone weights.*weights fetch"):
        T.train(fake, folder_of(tmp_path / "d", {"a": 2, "b": 2}, photos["coffee"]), cache_dir=tmp_path / "c")


def test_constant_features_are_refused(tmp_path, photos, checkpoint):
    fake = FakeClassifier(checkpoint, "cpu")
    fake.pooled_features = lambda items: np.ones((len(items), 2, T.FEATURE_DIM), np.float32)
    with pytest.raises(T.TrainingError, match="same features for every photo"):
        T.train(fake, folder_of(tmp_path / "d", {"a": 2, "b": 2}, photos["coffee"]), cache_dir=tmp_path / "c")


def test_warnings_name_duplicates_labels_and_skipped_files(tmp_path, photos, checkpoint):
    data = folder_of(tmp_path / "d", {"cats": 3, "dogs": 3, "bad\x07name ": 2}, photos["coffee"])
    shutil.copy(data / "cats" / "0.png", data / "dogs" / "same as a cat.png")
    shutil.copy(data / "cats" / "1.png", data / "cats" / "twice.png")  # the same photo twice in one class
    (data / "dogs" / "readme.txt").write_text("hi")
    (data / "loose.png").write_bytes(b"")
    (data / ".thumbnails").mkdir()
    (data / "cats" / "empty.jpg").write_bytes(b"")
    result = T.train(FakeClassifier(checkpoint, "cpu"), data, cache_dir=tmp_path / "c")
    assert result.labels == ["bad name", "cats", "dogs"]
    text = "\n".join(result.warnings)
    assert "'bad\\x07name ' is not a valid class label" in text and "called 'bad name'" in text
    assert "same photo is in more than one class: cats/0.png ('cats'), dogs/same as a cat.png ('dogs')" in text
    assert "1 file that is not an image by name skipped" in text
    assert "1 file directly in" in text
    assert "1 unreadable photo skipped" in text
    assert text.count("fewer than 10 photos") == 1 and "'cats' (3), 'dogs' (4)" in text
    assert result.counts == [2, 3, 4]  # cats: 0,1,2 (twice.png counted once, empty.jpg unreadable)
    assert [p.name for p, _ in result.unreadable] == ["empty.jpg"]


def test_split_is_stratified_and_seeded():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2)
    train, val = T.split(labels, 0.2, seed=3)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(17))
    assert [int((labels[val] == c).sum()) for c in range(3)] == [2, 1, 1]
    assert np.array_equal(val, T.split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(val, T.split(labels, 0.2, seed=4)[1])
    assert len(T.split(labels, 0.0, seed=0)[1]) == 0


def test_metrics():
    m = T.metrics(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 1]), ["a", "b", "c"])
    assert m["accuracy"] == 0.6 and "confusion" not in m  # never classes x classes numbers
    assert T.confusion_matrix(m, ["a", "b", "c"]) == {(0, 0): 1, (0, 1): 1, (1, 1): 2, (2, 1): 1}
    assert m["confused"] == [{"true": "a", "predicted": "b", "photos": 1}, {"true": "c", "predicted": "b", "photos": 1}]
    assert m["worst"] == [{"class": "c", "recall": 0.0}, {"class": "a", "recall": 0.5}]
    assert m["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "support": 2, "correct": 2}
    assert m["per_class"]["c"]["precision"] is None and m["per_class"]["c"]["recall"] == 0.0


# ---- untrusted files: pipes, devices, swapped cache entries, odd names, targets that are not files ----
HANG_GUARD_S = 120  # a guard, not a measurement: what it catches is a read that never ends


def finishes(fn, *pipes):
    """``fn()`` on a thread; if it is still stuck after HANG_GUARD_S (reading a pipe that never ends), the test
    fails, and a writer that comes and goes gives the stuck reader an end of file."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    if thread.is_alive():
        for pipe in pipes:
            try:
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail("training waited on a pipe or device instead of skipping it")
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_pipes_and_devices_among_the_photos_are_skipped_with_the_reason(tmp_path, photos, checkpoint):
    data = folder_of(tmp_path / "d", {"cats": 3, "dogs": 3}, photos["coffee"])
    pipe = data / "cats" / "a pipe.png"
    os.mkfifo(pipe)
    (data / "cats" / "pipe link.png").symlink_to(pipe)
    (data / "dogs" / "zeros.jpg").symlink_to("/dev/zero")
    result = finishes(lambda: T.train(FakeClassifier(checkpoint, "cpu"), data, cache_dir=tmp_path / "c"), pipe)
    reasons = {p.name: e for p, e in result.unreadable}
    assert set(reasons) == {"a pipe.png", "pipe link.png"}
    assert "not a regular file (a named pipe)" in reasons["a pipe.png"]
    assert "not a regular file (a named pipe)" in reasons["pipe link.png"]
    assert any("zeros.jpg: is a link that leads outside the folder" in w for w in result.warnings)
    assert result.counts == [3, 3]


def test_a_pipe_or_device_as_a_cache_entry_is_recomputed(tmp_path, photos, checkpoint):
    data = folder_of(tmp_path / "d", {"cats": 3, "dogs": 3}, photos["coffee"])
    fake = FakeClassifier(checkpoint, "cpu")
    first = T.train(fake, data, cache_dir=tmp_path / "c")
    cache = T.FeatureCache(tmp_path / "c", T.backbone_sha256(fake))
    pipe = cache._path(T.file_sha256(data / "cats" / "0.png"))
    zeros = cache._path(T.file_sha256(data / "dogs" / "0.png"))
    for entry in (pipe, zeros):
        assert entry.is_file()
        entry.unlink()
    os.mkfifo(pipe)
    zeros.symlink_to("/dev/zero")
    again = finishes(lambda: T.train(fake, data, cache_dir=tmp_path / "c"), pipe)
    assert again.computed == 2 and again.cache_hits == 4
    assert np.array_equal(again.weight, first.weight)


def test_stop_is_honoured_between_photos(tmp_path, photos, checkpoint):
    """Stop pressed while the first photo decodes: no batch goes through the network afterwards."""
    data = folder_of(tmp_path / "d", {"cats": 3, "dogs": 3}, photos["coffee"])
    fake = FakeClassifier(checkpoint, "cpu")
    stop = threading.Event()
    batches = []
    decode = fake.prepare

    def prepare(source):
        stop.set()
        return decode(source)

    fake.prepare = prepare
    real = fake.pooled_features
    fake.pooled_features = lambda items: batches.append(len(items)) or real(items)
    with pytest.raises(T.TrainingCancelled):
        T.train(fake, data, cache_dir=tmp_path / "c", cancelled=stop.is_set)
    assert batches == []
    with pytest.raises(T.TrainingCancelled):  # stopped before it began: not one photo is decoded
        T.train(FakeClassifier(checkpoint, "cpu"), data, cache_dir=tmp_path / "c2", cancelled=lambda: True)
    assert not (tmp_path / "c2").exists() or not list((tmp_path / "c2").rglob("*.*"))


def test_swapped_or_foreign_cache_entries_are_recomputed(tmp_path, photos, checkpoint):
    """An entry answers only for the photo and backbone written inside it, whatever its file name."""
    data = folder_of(tmp_path / "d", {"cats": 3, "dogs": 3}, photos["coffee"])
    fake = FakeClassifier(checkpoint, "cpu")
    first = T.train(fake, data, cache_dir=tmp_path / "c")
    cache = T.FeatureCache(tmp_path / "c", T.backbone_sha256(fake))
    cat, dog = (cache._path(T.file_sha256(data / c / "0.png")) for c in ("cats", "dogs"))
    cat_bytes, dog_bytes = cat.read_bytes(), dog.read_bytes()
    cat.write_bytes(dog_bytes)
    dog.write_bytes(cat_bytes)
    again = T.train(fake, data, cache_dir=tmp_path / "c")
    assert again.computed == 2 and again.cache_hits == 4
    assert np.array_equal(again.weight, first.weight) and again.validation == first.validation
    # another backbone's entries, copied under this backbone's folder, are not believed either
    other = FakeClassifier(checkpoint, "cpu")
    other.checkpoint.state = {"conv1.weight": np.arange(6, dtype=np.float32) + 1}
    other.pooled_features = lambda items: np.full((len(items), 2, T.FEATURE_DIM), 7.0, np.float32)
    foreign = T.FeatureCache(tmp_path / "other", T.backbone_sha256(other))
    T.extract(other, T.scan(data), foreign)
    shutil.rmtree(cache.folder)
    shutil.copytree(foreign.folder, cache.folder)
    third = T.train(fake, data, cache_dir=tmp_path / "c")
    assert third.computed == 6 and third.cache_hits == 0
    assert np.array_equal(third.weight, first.weight)


def test_the_model_is_never_written_over_a_pipe_or_device_and_keeps_the_mode(tmp_path, photos, checkpoint):
    data = folder_of(tmp_path / "d", {"cats": 2, "dogs": 2}, photos["coffee"])
    fake = FakeClassifier(checkpoint, "cpu")
    result = T.train(fake, data, cache_dir=tmp_path / "c")
    pipe = tmp_path / "pipe.safetensors"
    os.mkfifo(pipe)
    null = tmp_path / "null.safetensors"
    null.symlink_to("/dev/null")
    for target, kind in ((pipe, "a named pipe"), (null, "a character device"), (Path("/dev/null"), "a character device")):
        with pytest.raises(T.TrainingError, match=f"is {kind}, not a regular file"):
            T.save(fake, result, target)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and null.is_symlink()
    proc = run_cli("train", data, "--out", pipe, "--weights", tmp_path / "missing.pth")
    assert proc.returncode == 2 and "is a named pipe, not a regular file" in proc.stderr
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    # an existing model keeps its permissions: a private file stays private
    private = tmp_path / "private.safetensors"
    private.write_bytes(b"old")
    private.chmod(0o600)
    T.save(fake, result, private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_bytes() != b"old"
    copied = tmp_path / "copied.safetensors"
    copied.write_bytes(b"old")
    copied.chmod(0o640)
    T.copy_model(private, copied)
    assert stat.S_IMODE(copied.stat().st_mode) == 0o640 and copied.read_bytes() == private.read_bytes()


def test_class_names_in_two_unicode_forms_case_twins_hidden_folders_and_outside_file_links(tmp_path, photos):
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    data = folder_of(tmp_path / "d", {nfc: 2, nfd: 2, "Dog": 2, "dog": 2, "..hidden": 2, ".git": 1}, photos["coffee"])
    outside = folder_of(tmp_path / "elsewhere", {"x": 1}, photos["chelsea"]) / "x" / "0.png"
    (data / "Dog" / "outside.png").symlink_to(outside)
    (data / "Dog" / "other class.png").symlink_to(data / "dog" / "0.png")  # out of its class folder too
    (data / "Dog" / "inside.png").symlink_to(data / "Dog" / "0.png")  # stays inside: followed
    ds = T.scan(data)
    assert ds.labels == ["Dog", nfc, "dog"]
    assert ds.counts() == [3, 4, 2]
    names = {p.name for p, y in ds.files if y == 0}
    assert names == {"0.png", "1.png", "inside.png"}
    text = "\n".join(ds.warnings)
    assert "two Unicode forms" in text and f"one class {nfc!r}" in text
    assert "classes 'Dog', 'dog' differ only in upper and lower case" in text
    assert "hidden folders '..hidden', '.git'" in text
    assert f"skipped {data / 'Dog' / 'outside.png'}: is a link that leads outside the folder" in text
    assert f"skipped {data / 'Dog' / 'other class.png'}: is a link that leads outside the folder" in text
    assert "not a valid class label" not in text  # NFD is the same name, not a renamed one
    with pytest.raises(T.TrainingError, match="would both be the class 'dog'"):  # two folders of one name: no merge
        T.scan([data / "dog", folder_of(tmp_path / "other", {"dog": 2}, photos["coffee"]) / "dog"])


def test_cli_train_checks_the_folder_before_loading_the_model(tmp_path, photos):
    one = folder_of(tmp_path / "one", {"cats": 3}, photos["coffee"])
    proc = run_cli("train", one, "--out", tmp_path / "m.safetensors", "--weights", tmp_path / "missing.pth")
    assert proc.returncode == 2 and "at least two classes" in proc.stderr
    assert "loading the model" not in proc.stderr


# ---- many classes, many photos: refused past the bound, linear below it, features held once ----
def test_more_classes_than_the_bound_are_refused_before_any_folder_is_listed(tmp_path, monkeypatch):
    listed = []
    monkeypatch.setattr("resnext_gui.core.train.data.iter_images", lambda *a, **k: listed.append(a) or iter(()))
    for i in range(T.MAX_CLASSES + 1):
        (tmp_path / "data" / f"class {i:04}").mkdir(parents=True)
    for data in (tmp_path / "data", sorted(str(p) for p in (tmp_path / "data").iterdir())):
        with pytest.raises(T.TrainingError) as refused:
            T.scan(data)
        assert f"at most {T.MAX_CLASSES:,} classes" in str(refused.value)
        assert f"has {T.MAX_CLASSES + 1:,} class folders" in str(refused.value)
    assert listed == []  # no class folder was read


def synthetic_run(monkeypatch, checkpoint, tmp_path, classes, per_class=3):
    """T.train over ``classes`` classes with the features injected (no photo is read) and a head drawn at random
    (the fit is not what is measured): what train does around them, and what it reports."""
    rng = np.random.default_rng(classes)
    files = [(Path(f"/nowhere/{c}/{i}.png"), c) for c in range(classes) for i in range(per_class)]
    data = T.DataSet(tmp_path, [f"class {c}" for c in range(classes)], files)
    feats = T.Features([p for p, _ in files], np.array([y for _, y in files]),
                       rng.random((len(files), 2, T.FEATURE_DIM), dtype=np.float32), [str(i) for i in range(len(files))])
    monkeypatch.setattr("resnext_gui.core.train.run.extract", lambda *a, **k: feats)
    monkeypatch.setattr("resnext_gui.core.train.run.fit_head", lambda x, y, k, l2, overwrite=False: (
        rng.standard_normal((k, T.FEATURE_DIM)).astype(np.float32), np.zeros(k, np.float32)))
    fake = FakeClassifier(checkpoint, "cpu")
    result = T.train(fake, data, val_fraction=0.34, cache_dir=tmp_path / "c")
    _state, metadata = T.checkpoint_state(fake, result)
    return result, len(json.dumps(result.summary())), len(metadata["provenance"])


def test_what_train_reports_grows_linearly_with_the_classes(tmp_path, monkeypatch, checkpoint):
    """At 4x the classes (and photos) the summary line and the model's provenance are about 4x as long, not 16x:
    no classes x classes matrix is written anywhere (at 10,000 classes that was a 302 MB line)."""
    small, small_summary, small_meta = synthetic_run(monkeypatch, checkpoint, tmp_path / "s", 250)
    big, big_summary, big_meta = synthetic_run(monkeypatch, checkpoint, tmp_path / "b", 1000)
    assert big_summary < 4.6 * small_summary and big_meta < 4.6 * small_meta
    assert big.validation["photos"] == 1000 and len(big.validation["per_class"]) == 1000
    assert len(big.validation["worst"]) == T.WORST_SHOWN
    assert sum(e["photos"] for e in big.validation["confused"]) == len(big.mistakes)


def test_metrics_of_a_thousand_classes_hold_no_matrix(tmp_path):
    import tracemalloc

    k, n = 1000, 3000
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, k, n), rng.integers(0, k, n)
    tracemalloc.start()
    try:
        m = T.metrics(truth, pred, [f"class {c}" for c in range(k)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # a dense k x k count (and its list) alone would be 16 MB
    assert sum(e["photos"] for e in m["confused"]) == int((truth != pred).sum())


def unique_photos(folder: Path, n: int, start: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        Image.new("RGB", (6, 6), (i % 256, i // 256, 7)).save(folder / f"{i}.png")


def test_train_holds_each_photo_s_features_once_not_the_photos(tmp_path, checkpoint):
    """Python memory at its peak grows per photo by little more than the photo's features (16 KB, the
    photo and its mirror) and one float64 copy of the training part for the fit; never by a decoded photo."""
    import tracemalloc

    fake = FakeClassifier(checkpoint, "cpu")

    def pooled(items):  # a cheap stand-in backbone: distinct features per photo, no big temporary
        return np.stack([np.random.default_rng(int(i.tensor.sum() * 1000)).random((2, T.FEATURE_DIM), dtype=np.float32)
                         for i in items])

    fake.pooled_features = pooled
    peaks = {}
    for n in (40, 120):
        data = tmp_path / f"d{n}"
        unique_photos(data / "a", n // 2, 0)
        unique_photos(data / "b", n // 2, n // 2)
        tracemalloc.start()
        try:
            T.train(fake, data, cache_dir=tmp_path / "c")
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    per_photo = (peaks[120] - peaks[40]) / 80
    features = 2 * T.FEATURE_DIM * 4
    assert per_photo < 3 * features, f"{per_photo / 1024:.0f} KB a photo"
