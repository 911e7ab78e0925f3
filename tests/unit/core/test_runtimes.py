"""The runtimes: OpenVINO (built from the checkpoint's arrays) gives PyTorch's answers, caches only its compiled
form, and PyTorch takes over whenever it fails."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from resnext_gui.core import runtimes as R
from resnext_gui.core.classifier import Classifier
from resnext_gui.core.devices import native_bf16
from resnext_gui.core.errors import BackendError
from resnext_gui.core.model import forward_to
from tests.support.helpers import REPO, make_checkpoint, run_cli

# slow: the module compiles several networks for OpenVINO, seconds each
pytestmark = [pytest.mark.skipif(not R.openvino_available(), reason="OpenVINO is not installed"), pytest.mark.slow]

NAMES = ("chelsea", "astronaut", "coffee", "rocket_jpg")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, photos):
    """A checkpoint whose head gives each test photo its own clear top-5 (the seeded head gives near-ties).

    The head is fitted by least squares from the photos' pooled last-stage features to target logits that
    rank five distinct classes per photo with clear gaps; the backbone stays the seeded one.
    """
    path = make_checkpoint(tmp_path_factory.mktemp("fitted") / "fitted.pth", seed=3)
    state = torch.load(path, weights_only=True)
    clf = Classifier(path, device="cpu", backend="torch")
    batch = torch.from_numpy(np.stack([clf.prepare(photos[n]).tensor for n in NAMES]))
    model = clf.runtime.model
    with torch.inference_mode():
        pooled = torch.flatten(model.avgpool(forward_to(model, batch)), 1).double()
    targets = torch.zeros(len(NAMES), 1000, dtype=torch.float64)
    for i in range(len(NAMES)):
        for rank, value in enumerate((9.0, 7.5, 6.0, 4.5, 3.0)):
            targets[i, 100 * i + 17 * rank + 5] = value
    solution = torch.linalg.pinv(pooled) @ targets  # (2048, 1000): minimum-norm exact fit, no bias, so each
    state["fc.weight"] = solution.T.float().contiguous()  # class's map averages to its (positive) logit
    state["fc.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def pair(fitted):
    return Classifier(fitted, device="cpu", backend="torch"), Classifier(fitted, device="cpu", backend="openvino")


def _corr(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def test_fp32_matches_pytorch_on_real_photos(pair, photos):
    ref, ov = pair
    assert ov.backend == "openvino" and ref.backend == "torch" and ov.note is None
    for name in NAMES:
        a, b = ref.classify(photos[name]), ov.classify(photos[name])
        assert a.ok and b.ok
        assert [t.index for t in b.top] == [t.index for t in a.top], name
        assert a.top[0].prob > 2 * a.top[1].prob  # the fitted head makes the top-5 comparison meaningful
        assert np.abs(np.array([t.prob for t in b.top]) - [t.prob for t in a.top]).max() <= 1e-4
        assert b.cams.shape == a.cams.shape == (5, 7, 7)
        for k in range(5):
            assert a.cams[k].max() == pytest.approx(1) and a.cams[k].std() > 0.05  # a real map, not all zeros
            assert _corr(a.cams[k], b.cams[k]) >= 0.999, (name, k)


def test_fp32_full_probabilities_and_batches_match(pair, photos):
    ref, ov = pair
    batch = torch.from_numpy(np.stack([ref.prepare(photos[n]).tensor for n in NAMES]))
    with torch.inference_mode():
        expected = torch.softmax(ref.runtime.model(batch), 1)
    feats, logits = ov.runtime.infer(batch.numpy())
    assert (torch.softmax(torch.from_numpy(logits), 1) - expected).abs().max().item() <= 1e-4
    assert feats.shape == (len(NAMES), 2048, 7, 7)
    many = list(ov.classify_many([photos[n] for n in NAMES], batch_size=3))
    for name, pred in zip(NAMES, many):
        assert [t.index for t in pred.top] == [t.index for t in ref.classify(photos[name]).top]


@pytest.mark.parametrize("layer,side", [("layer3", 14), ("layer2", 28)])
def test_earlier_stages_match_pytorch_autograd(pair, photos, layer, side):
    ref, ov = pair
    for name in ("coffee", "chelsea"):
        a, b = ref.classify(photos[name], layer=layer), ov.classify(photos[name], layer=layer)
        assert b.cams.shape == (5, side, side) and [t.index for t in a.top] == [t.index for t in b.top]
        for k in range(5):
            assert a.cams[k].std() > 0.05 and _corr(a.cams[k], b.cams[k]) >= 0.999, (name, k)


def test_compiled_network_is_cached_by_openvino_and_reused(fitted, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = Classifier(fitted, device="cpu", backend="openvino")
    folder = R.compiled_cache_dir()
    blobs = sorted(p.name for p in folder.iterdir())
    assert folder.is_relative_to(tmp_path) and blobs and not first.runtime.from_cache
    expected = [t.index for t in first.classify(photos["chelsea"]).top]
    second = Classifier(fitted, device="cpu", backend="openvino")
    assert second.runtime.from_cache and sorted(p.name for p in folder.iterdir()) == blobs
    assert [t.index for t in second.classify(photos["chelsea"]).top] == expected


def test_preparing_is_said_only_when_the_network_is_really_compiled(fitted, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    preparing = ["Preparing the model for this CPU…"]

    def start(weights=fitted):
        said = []
        clf = Classifier(weights, device="cpu", backend="openvino", progress=said.append)
        return said, clf.runtime.from_cache

    assert start() == (preparing, False)
    assert start() == ([], True)  # OpenVINO's cache holds it: loaded in a moment, nothing to announce
    assert start(checkpoint) == (preparing, False)  # another checkpoint's network
    for blob in R.compiled_cache_dir().iterdir():  # the cache emptied behind the app's back
        blob.unlink()
    assert start() == (preparing, False)


def test_cache_entries_answer_only_for_their_own_network(fitted, checkpoint, photos, tmp_path, monkeypatch):
    """OpenVINO keys a compiled network by the graph and all its weights: another checkpoint's entry, or one
    planted under this network's name, is never taken for this network's answers."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ref = Classifier(fitted, device="cpu", backend="torch")
    Classifier(checkpoint, device="cpu", backend="openvino")  # the other network's entry is in the cache
    mine = Classifier(fitted, device="cpu", backend="openvino")
    assert not mine.runtime.from_cache  # not answered by the other checkpoint's entry
    folder = R.compiled_cache_dir()
    entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
    other, own = entries[0], entries[-1]
    own.write_bytes(other.read_bytes())  # planted: the other network's compiled blob under this network's key
    planted = Classifier(fitted, device="cpu", backend="openvino")
    assert planted.runtime.from_cache  # OpenVINO itself takes the planted blob for this network...
    for name in NAMES:  # ...but its first run shows it carries another checkpoint: compiled afresh, right answers
        assert [t.index for t in planted.classify(photos[name]).top] == [t.index for t in ref.classify(photos[name]).top]
    again = Classifier(fitted, device="cpu", backend="openvino")  # the cache holds this network's own entry again
    assert own.is_file() and again.runtime.from_cache
    assert [t.index for t in again.classify(photos["coffee"]).top] == [t.index for t in ref.classify(photos["coffee"]).top]


def test_odd_files_in_the_cache_never_hang_or_break_a_start(fitted, photos, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    Classifier(fitted, device="cpu", backend="openvino")
    folder = R.compiled_cache_dir()
    blob = next(folder.iterdir())
    blob.unlink()
    os.mkfifo(blob)  # a FIFO where OpenVINO reads the compiled network: opening it would wait for ever
    (folder / "zero.blob").symlink_to("/dev/zero")
    clf = Classifier(fitted, device="cpu", backend="openvino")
    assert clf.backend == "openvino" and clf.classify(photos["coffee"]).ok
    assert blob.is_file() and not (folder / "zero.blob").exists()


def test_a_build_failure_falls_back_to_pytorch(fitted, photos, tmp_path, monkeypatch, pair):
    from resnext_gui.core import ov_net

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("graph exploded")

    monkeypatch.setattr(ov_net, "build_network", broken)
    clf = Classifier(fitted, device="cpu")
    assert clf.backend == "torch" and "could not build" in clf.note and "graph exploded" in clf.note
    pred, ref = clf.classify(photos["coffee"]), pair[0].classify(photos["coffee"])
    assert [t.index for t in pred.top] == [t.index for t in ref.top] and pred.ok


def test_runtime_failure_falls_back_with_a_note(fitted, photos, pair):
    clf = Classifier(fitted, device="cpu", backend="openvino")
    assert clf.backend == "openvino"

    def broken(batch):
        raise BackendError("OpenVINO failed while running the model (RuntimeError: boom)")

    clf.runtime.infer = broken
    pred, ref = clf.classify(photos["astronaut"]), pair[0].classify(photos["astronaut"])
    assert pred.ok and "ran on PyTorch" in pred.note and "boom" in pred.note
    assert [t.index for t in pred.top] == [t.index for t in ref.top]
    assert clf.backend == "torch" and clf.classify(photos["astronaut"]).note is None


def test_non_finite_openvino_scores_are_never_reported(fitted, photos):
    clf = Classifier(fitted, device="cpu", backend="openvino")
    real = clf.runtime.infer

    def overflowing(batch):
        feats, logits = real(batch)
        return feats, np.full_like(logits, np.nan)

    clf.runtime.infer = overflowing
    pred = clf.classify(photos["coffee"])
    assert not pred.ok and "not finite" in pred.error


def test_torch_is_used_when_asked_or_when_openvino_is_missing(fitted, monkeypatch):
    assert Classifier(fitted, device="cpu", backend="torch").backend == "torch"
    monkeypatch.setattr("resnext_gui.core.classifier.openvino_available", lambda: False)
    auto = Classifier(fitted, device="cpu")
    assert auto.backend == "torch" and auto.note is None
    asked = Classifier(fitted, device="cpu", backend="openvino")
    assert asked.backend == "torch" and "not installed" in asked.note
    with pytest.raises(ValueError, match="unknown backend"):
        Classifier(fitted, device="cpu", backend="tensorrt")


BLOCK_OPENVINO = r"""
import sys
sys.modules["openvino"] = None  # as if it were not installed: importing it raises ImportError
from resnext_gui.core.classifier import Classifier
clf = Classifier(sys.argv[1], device="cpu")
pred = clf.classify(sys.argv[2])
print(clf.backend, pred.ok, clf.note)
"""


def test_core_runs_without_openvino(fitted, photos):
    r = subprocess.run([sys.executable, "-c", BLOCK_OPENVINO, str(fitted), str(photos["coffee"])],
                       capture_output=True, text=True, cwd=REPO, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["torch", "True", "None"]


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_keeps_the_top1(pair, fitted, photos):
    clf = Classifier(fitted, device="cpu", backend="openvino", precision="bf16")
    assert clf.backend == "openvino" and clf.runtime.precision == "bf16"
    for name in NAMES:
        assert clf.classify(photos[name]).top[0].index == pair[0].classify(photos[name]).top[0].index


def test_cli_backend_option(fitted, photos):
    outs = {}
    for backend in ("torch", "openvino"):
        r = run_cli("classify", "--weights", fitted, "--backend", backend, photos["chelsea"], photos["coffee"])
        assert r.returncode == 0, r.stderr
        outs[backend] = [json.loads(line) for line in r.stdout.splitlines()]
    for a, b in zip(outs["torch"], outs["openvino"]):
        assert [t["index"] for t in a["top"]] == [t["index"] for t in b["top"]]
        assert np.abs(np.array([t["prob"] for t in a["top"]]) - [t["prob"] for t in b["top"]]).max() <= 1e-4
    r = run_cli("classify", "--backend", "onnx", photos["chelsea"])
    assert r.returncode == 2 and "--backend" in r.stderr
