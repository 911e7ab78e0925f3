"""The core and the CLI import and run with PySide6 unavailable."""

import subprocess
import sys

from tests.helpers import REPO

BLOCK_QT_AND_RUN = r"""
import importlib, pkgutil, sys

class BlockQt:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, BlockQt())
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
    modules = len([p for p in (REPO / "resnext_gui" / "core").glob("*.py") if p.name != "__init__.py"])
    assert f"imported {modules} core modules; classify exit 0" in r.stdout
