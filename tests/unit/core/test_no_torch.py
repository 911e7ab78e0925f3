"""The light CPU app's path: the core, the CLI and the window import and run with torch and torchvision unavailable."""

import json
import subprocess
import sys

import pytest

from tests.support.helpers import BLOCK_TORCH, REPO

pytestmark = pytest.mark.slow  # builds and compiles the OpenVINO network in fresh processes


CORE = BLOCK_TORCH + r"""
import importlib, json, pkgutil
import resnext_gui.core
from resnext_gui.core.devices import torch_installed
skip = {"resnext_gui.core.model", "resnext_gui.core.torch_runtime", "resnext_gui.core.torch_cam"}  # the PyTorch runtime
mods = [m.name for m in pkgutil.walk_packages(resnext_gui.core.__path__, "resnext_gui.core.") if m.name not in skip]
for m in mods:
    importlib.import_module(m)
from resnext_gui.core import Classifier
clf = Classifier(sys.argv[1])
last = clf.classify(sys.argv[2])
earlier = {layer: clf.classify(sys.argv[2], layer=layer) for layer in ("layer3", "layer2")}
feats = clf.pooled_features([clf.prepare(sys.argv[2])])
print(json.dumps({
    "backend": clf.backend, "torch_installed": torch_installed(),
    "ok": [last.ok] + [p.ok for p in earlier.values()],
    "shapes": [list(last.cams.shape)] + [list(p.cams.shape) for p in earlier.values()],
    "same_top": all([t.index for t in p.top] == [t.index for t in last.top] for p in earlier.values()),
    "pooled": list(feats.shape),
    "torch_loaded": any(k.split(".")[0] in ("torch", "torchvision") for k in sys.modules),
}))
"""


def test_core_classifies_and_explains_without_torch(checkpoint, photos):
    r = subprocess.run([sys.executable, "-c", CORE, str(checkpoint), str(photos["chelsea"])],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"backend": "openvino", "torch_installed": False, "ok": [True, True, True],
                   "shapes": [[5, 7, 7], [5, 14, 14], [5, 28, 28]], "same_top": True, "pooled": [1, 2, 2048],
                   "torch_loaded": False}


CLI = BLOCK_TORCH + r"""
from resnext_gui.cli import main
code = main(["classify", "--weights", sys.argv[1], "--layer", "layer3", sys.argv[2]])
assert not any(k.split(".")[0] in ("torch", "torchvision") for k in sys.modules), "torch was imported"
sys.exit(code)
"""


def test_classify_command_without_torch(checkpoint, photos):
    r = subprocess.run([sys.executable, "-c", CLI, str(checkpoint), str(photos["coffee"])],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout.strip().splitlines()[-1])
    assert record["ok"] and len(record["top"]) == 5


def test_asking_for_cuda_without_torch_says_so(checkpoint, photos):
    code = BLOCK_TORCH + "from resnext_gui.cli import main\nsys.exit(main(['classify', '--device', 'cuda', '--weights', sys.argv[1], sys.argv[2]]))\n"
    r = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(photos["coffee"])],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2
    assert "runs on the CPU only" in r.stderr and "Traceback" not in r.stderr


WINDOW = BLOCK_TORCH + r"""
from resnext_gui.launch.app import main
sys.exit(main(["--startup-report", "--weights", sys.argv[1], sys.argv[2]]))
"""


def test_window_answers_a_photo_without_torch(checkpoint, photos, tmp_path):
    import os

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-c", WINDOW, str(checkpoint), str(photos["chelsea"])],
                       capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["window", "model", "result"], events
    assert events[-1]["ok"] and not any(e["torch_loaded"] for e in events)
