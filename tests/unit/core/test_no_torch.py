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


def test_classify_backend_torch_without_torch_says_this_build_has_none(checkpoint, photos):
    code = BLOCK_TORCH + ("from resnext_gui.cli import main\n"
                          "sys.exit(main(['classify', '--backend', 'torch', '--weights', sys.argv[1], sys.argv[2]]))\n")
    r = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(photos["coffee"])],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert "this build of the app has no PyTorch" in r.stderr and "OpenVINO is not available" not in r.stderr


def test_the_core_says_which_runtime_is_missing_in_a_sentence(checkpoint):
    code = BLOCK_TORCH + r"""
import json
from resnext_gui.core import classifier
from resnext_gui.core.errors import BackendError
said = []
for backend in ("torch", "auto"):
    if backend == "auto":
        classifier.openvino_available = lambda: False  # OpenVINO broken as well: nothing can run the network
    try:
        classifier.Classifier(sys.argv[1], backend=backend)
    except BackendError as exc:
        said.append(str(exc))
print(json.dumps(said))
"""
    r = subprocess.run([sys.executable, "-c", code, str(checkpoint)], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    torch, nothing = json.loads(r.stdout.strip().splitlines()[-1])
    assert torch == ("the CPU runtime PyTorch was asked for, but this build of the app has no PyTorch: its CPU "
                     "runtime is OpenVINO (choose auto or openvino).")
    assert nothing == "OpenVINO is not installed, and this build of the app has no PyTorch to run the network instead."


def test_window_with_pytorch_saved_starts_with_openvino_without_torch(checkpoint, tmp_path):
    """The settings say PyTorch (another installation shares them); this build has none: the window still loads
    the model given with --weights, with OpenVINO."""
    import os

    config = tmp_path / "config" / "resnext-gui"
    config.mkdir(parents=True)
    (config / "resnext-gui.conf").write_text("[General]\nbackend=torch\n", encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = subprocess.run([sys.executable, "-c", WINDOW.replace(", sys.argv[2]", ""), str(checkpoint)],
                       capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [(e["event"], e.get("state")) for e in events] == [("window", None), ("model", "ready")], events
    assert "backend=torch" not in (config / "resnext-gui.conf").read_text(encoding="utf-8")
