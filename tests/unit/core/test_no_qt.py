"""The core and the CLI import and run with PySide6 unavailable."""

import subprocess
import sys

from tests.support.helpers import BLOCK_QT, REPO

BLOCK_QT_AND_RUN = BLOCK_QT + r"""
import importlib, pkgutil
import resnext_gui.core
mods = [m.name for m in pkgutil.walk_packages(resnext_gui.core.__path__, "resnext_gui.core.")]
for m in mods + ["resnext_gui.cli"]:
    importlib.import_module(m)
from resnext_gui.cli import main
code = main(["classify", "--weights", sys.argv[1], sys.argv[2]])
assert not any(k.startswith("PySide6") for k in sys.modules)
print("imported", len(mods), "core modules; classify exit", code)
"""


def test_core_runs_without_qt(checkpoint, photos):
    r = subprocess.run([sys.executable, "-c", BLOCK_QT_AND_RUN, str(checkpoint), str(photos["coffee"])],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    core = REPO / "resnext_gui" / "core"
    modules = len([p for p in core.rglob("*.py") if p.name != "__init__.py"])
    modules += len([p for p in core.rglob("__init__.py") if p.parent != core])  # subpackages count as modules
    assert f"imported {modules} core modules; classify exit 0" in r.stdout


NOTEBOOK = r"""
import sys
import resnext_gui.core as core
assert "torch" not in sys.modules, "importing the core package must stay light"
from resnext_gui.core import Classifier
pred = Classifier(sys.argv[1]).classify(sys.argv[2])
print(pred.ok, len(pred.top), pred.cams.shape, Classifier.__module__)
"""


def test_the_readme_notebook_example(checkpoint, photos):
    r = subprocess.run([sys.executable, "-c", NOTEBOOK, str(checkpoint), str(photos["coffee"])],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "5", "(5,", "7,", "7)", "resnext_gui.core.classifier"]
