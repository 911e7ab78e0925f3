"""OpenVINO backend: PyTorch's answers on real photos, a checked on-disk cache, and PyTorch whenever it fails."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from resnext_gui.core import backend as B
from resnext_gui.core.classifier import Classifier
from resnext_gui.core.model import forward_to
from tests.helpers import REPO, make_checkpoint, run_cli

# slow: the module converts several networks for OpenVINO, seconds each
pytestmark = [pytest.mark.skipif(not B.openvino_available(), reason="OpenVINO is not installed"), pytest.mark.slow]

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
    with torch.inference_mode():
        pooled = torch.flatten(clf.loaded.model.avgpool(forward_to(clf.loaded.model, batch)), 1).double()
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
        expected = torch.softmax(ref.loaded.model(batch), 1)
    feats, logits = ov._ov.infer(batch)
    assert (torch.softmax(logits, 1) - expected).abs().max().item() <= 1e-4
    assert feats.shape == (len(NAMES), 2048, 7, 7)
    many = list(ov.classify_many([photos[n] for n in NAMES], batch_size=3))
    for name, pred in zip(NAMES, many):
        assert [t.index for t in pred.top] == [t.index for t in ref.classify(photos[name]).top]


def test_earlier_stages_use_pytorch_autograd(pair, photos):
    ref, ov = pair
    a, b = ref.classify(photos["coffee"], layer="layer3"), ov.classify(photos["coffee"], layer="layer3")
    assert b.cams.shape == (5, 14, 14) and [t.index for t in a.top] == [t.index for t in b.top]
    assert np.allclose(a.cams, b.cams, atol=1e-5)


@pytest.mark.slow  # converts the network three times
def test_cache_is_reused_and_a_damaged_entry_is_rebuilt(fitted, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    said = []
    first = Classifier(fitted, device="cpu", backend="openvino", progress=said.append)
    assert first._ov.converted and any("Converting" in s for s in said)
    entries = list((tmp_path / "resnext-gui" / "openvino").iterdir())
    assert [e.name for e in entries] == [first._ov.key]  # no temporary folder left behind
    assert first._ov.key.endswith("-fp32-v1") and "-ov" in first._ov.key
    said.clear()
    second = Classifier(fitted, device="cpu", backend="openvino", progress=said.append)
    assert not second._ov.converted and not any("Converting" in s for s in said)
    expected = [t.index for t in first.classify(photos["chelsea"]).top]

    weights = entries[0] / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # silent corruption: same size, other numbers
    weights.write_bytes(bytes(data))
    third = Classifier(fitted, device="cpu", backend="openvino")
    assert third._ov.converted and third.backend == "openvino"
    assert [t.index for t in third.classify(photos["chelsea"]).top] == expected

    (entries[0] / "manifest.json").write_text("{not json")
    fourth = Classifier(fitted, device="cpu", backend="openvino")
    assert fourth._ov.converted and json.loads((entries[0] / "manifest.json").read_text())["key"] == fourth._ov.key


def test_conversion_failure_falls_back_to_pytorch(fitted, photos, tmp_path, monkeypatch, pair):
    import openvino

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("conversion exploded")

    monkeypatch.setattr(openvino, "convert_model", broken)
    clf = Classifier(fitted, device="cpu")
    assert clf.backend == "torch" and "could not convert" in clf.note and "conversion exploded" in clf.note
    assert clf.default_batch_size == 8
    pred, ref = clf.classify(photos["coffee"]), pair[0].classify(photos["coffee"])
    assert [t.index for t in pred.top] == [t.index for t in ref.top] and pred.ok
    assert not (tmp_path / "resnext-gui" / "openvino").exists() or not any((tmp_path / "resnext-gui" / "openvino").iterdir())


@pytest.mark.slow  # converts the network once more
def test_a_conversion_that_gives_other_numbers_is_refused(fitted, checkpoint, tmp_path, monkeypatch):
    """A converted network is checked against PyTorch before it is used or cached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    real = B.OpenVINOBackend._convert
    other = Classifier(checkpoint, device="cpu", backend="torch").loaded.model  # another network's weights
    monkeypatch.setattr(B.OpenVINOBackend, "_convert", lambda self, model: real(self, other))
    clf = Classifier(fitted, device="cpu", backend="openvino")
    assert clf.backend == "torch" and "does not match PyTorch" in clf.note
    assert not any((tmp_path / "resnext-gui" / "openvino").glob("*/manifest.json"))


def test_runtime_failure_falls_back_with_a_note(fitted, photos, pair):
    clf = Classifier(fitted, device="cpu", backend="openvino")
    assert clf.backend == "openvino"

    def broken(batch):
        raise B.BackendError("OpenVINO failed while running the model (RuntimeError: boom)")

    clf._ov.infer = broken
    pred, ref = clf.classify(photos["astronaut"]), pair[0].classify(photos["astronaut"])
    assert pred.ok and "ran on PyTorch" in pred.note and "boom" in pred.note
    assert [t.index for t in pred.top] == [t.index for t in ref.top]
    assert clf.backend == "torch" and clf.classify(photos["astronaut"]).note is None


def test_non_finite_openvino_scores_are_never_reported(fitted, photos):
    clf = Classifier(fitted, device="cpu", backend="openvino")
    real = clf._ov.infer

    def overflowing(batch):
        feats, logits = real(batch)
        return feats, torch.full_like(logits, float("nan"))

    clf._ov.infer = overflowing
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


@pytest.mark.slow  # converts the network once more
@pytest.mark.skipif(not B.native_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_is_its_own_cache_entry_and_keeps_the_top1(pair, fitted, photos):
    clf = Classifier(fitted, device="cpu", backend="openvino", precision="bf16")
    assert clf.backend == "openvino" and clf._ov.key.endswith("-bf16-v1") and clf._ov.key != pair[1]._ov.key
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
