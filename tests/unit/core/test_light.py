"""The CPU path's own maths without torch: the head's fit against torch's L-BFGS, and imports that stay light."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from resnext_gui.core import train as T
from tests.support.helpers import BLOCK_TORCH, REPO, head_loss, torch_fit_head


def pooled_like(rng, labels, classes, separation):
    """Non-negative, sparse-ish 2048-d features (like pooled ReLU activations) with a class-dependent part."""
    centres = rng.gamma(0.5, 1.0, size=(classes, T.FEATURE_DIM))
    noise = rng.gamma(0.5, 1.0, size=(len(labels), T.FEATURE_DIM))
    return (noise + separation * centres[labels]).astype(np.float32)


CASES = [(40, 2, 0.0, False), (60, 4, 0.5, False), (200, 10, 0.3, False), (300, 3, 0.0, True), (90, 3, 2.0, False)]


@pytest.mark.parametrize("n,classes,separation,shuffled", CASES)
def test_fit_reaches_torch_lbfgs_loss_and_predictions(n, classes, separation, shuffled):
    rng = np.random.default_rng(n + classes)
    y = np.repeat(np.arange(classes), n // classes)
    y = rng.permutation(y) if shuffled else y
    x = pooled_like(rng, y, classes, separation)
    weight, bias = T.fit_head(x, y, classes)
    assert weight.dtype == np.float32 and weight.shape == (classes, T.FEATURE_DIM) and not bias.any()
    reference = torch_fit_head(x, y, classes, T.L2)
    ours, theirs = head_loss(weight, x, y, T.L2), head_loss(reference, x, y, T.L2)
    assert ours == pytest.approx(theirs, rel=1e-4)
    held_out = pooled_like(np.random.default_rng(7), np.arange(classes).repeat(5), classes, separation)
    for feats in (x, held_out):
        assert np.array_equal(T.predict_proba(weight, bias, feats).argmax(1),
                              T.predict_proba(reference, bias, feats).argmax(1))


def test_fit_is_deterministic_and_balanced():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 20)
    x = pooled_like(rng, y, 3, 0.4)
    first, again = T.fit_head(x, y, 3)[0], T.fit_head(x.copy(), y.copy(), 3)[0]
    assert np.array_equal(first, again)
    assert np.abs(first.sum(axis=0)).max() <= 1e-4 * np.abs(first).max()  # L2: the classes' weights sum to zero


def test_predict_proba_is_a_stable_softmax():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 16)).astype(np.float32)
    w = rng.normal(size=(4, 16)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    expected = torch.softmax(torch.from_numpy(x).double() @ torch.from_numpy(w).double().T + torch.from_numpy(b).double(), 1)
    assert np.allclose(T.predict_proba(w, b, x), expected.numpy(), atol=1e-12)
    huge = T.predict_proba(w * 1e4, b, x)  # logits of order 1e5: exp would overflow without the shift
    assert np.isfinite(huge).all() and np.allclose(huge.sum(axis=1), 1.0)


LIGHT = BLOCK_TORCH + r"""
import sys

import numpy as np
from PIL import Image
from resnext_gui.core import cam, labels, preprocess, train, weights

spec = weights.DEFAULT_VARIANT.preprocessing
x = preprocess.model_input(Image.new("RGB", (300, 200), (200, 100, 50)), spec)
assert x.shape == (3, 224, 224) and x.dtype == np.float32
assert len(labels.imagenet_labels()) == 1000 and weights.hub_checkpoint_dir().name == "checkpoints"
feats = np.random.default_rng(0).random((2, 2048, 7, 7), dtype=np.float32)
maps = cam.last_stage_cams(feats, np.ones((3, 2048), np.float32), np.array([[0, 1], [2, 0]]))
assert maps.shape == (2, 2, 7, 7)
y = np.array([0, 0, 1, 1])
w, b = train.fit_head(feats.mean(axis=(2, 3)).repeat(2, axis=0), y, 2)
assert train.predict_proba(w, b, feats.mean(axis=(2, 3))).shape == (2, 2)
assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")]
print("light")
"""


def test_the_cpu_path_s_own_modules_never_import_torch():
    r = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["light"]


CORE = REPO / "resnext_gui" / "core"
LIGHT_MODULES = ["cam.py", "labels.py", "preprocess.py", "weights.py"] + sorted(
    str(p.relative_to(CORE)) for p in (CORE / "train").glob("*.py"))


def test_the_light_modules_are_all_there():
    assert all((CORE / m).is_file() for m in LIGHT_MODULES) and len(LIGHT_MODULES) > 5


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_no_torch_import_even_for_type_checking(module):
    import ast

    tree = ast.parse((CORE / module).read_text(encoding="utf-8"))
    names = [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in ("torch", "torchvision")]
