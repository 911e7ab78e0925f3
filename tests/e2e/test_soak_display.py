"""A soak on a real X display: a 5,000-photo folder and continuous window resizes, then Ctrl+Q exits cleanly with
every photo listed (the gallery it keeps for the next start holds all 5,000, in order)."""

import shutil
import subprocess
import sys

import pytest
from PIL import Image

from tests.support.helpers import REPO, XDisplay

TOOLS = ("Xvfb", "openbox", "xdotool")
RESIZES = 120

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not all(shutil.which(t) for t in TOOLS),
                                                   reason="needs Xvfb, openbox and xdotool (.ci/run installs them)")]


@pytest.fixture
def display(tmp_path):
    """A private Xvfb display with openbox managing windows."""
    with XDisplay(QT_QPA_PLATFORM="xcb") as env:
        yield env


def _xdotool(env, *args, timeout=30) -> str:
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=timeout).stdout.strip()


def test_five_thousand_photos_and_resizing_then_ctrl_q(display, checkpoint, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5000):
        Image.new("RGB", (64, 48), (i % 256, (i // 256) * 12, 80)).save(folder / f"p{i:04}.png")
    env = {**display, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    app = subprocess.Popen([sys.executable, "-m", "resnext_gui", "--weights", str(checkpoint), str(folder)],
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wid = _xdotool(env, "search", "--sync", "--onlyvisible", "--name", "ResNeXt Classifier", timeout=60).split()[0]
        sizes = [(900, 600), (1300, 850), (700, 500), (1100, 700)]
        for n in range(RESIZES):
            w, h = sizes[n % len(sizes)]
            _xdotool(env, "windowsize", wid, str(w), str(h))
            assert app.poll() is None, f"the app died during the soak: {app.stderr.read()[-2000:]}"
        # the first photo answered (its class and probability in the title): the model and the library are in use
        _xdotool(env, "search", "--sync", "--onlyvisible", "--name", "%", timeout=120)
        _xdotool(env, "windowactivate", "--sync", wid)
        _xdotool(env, "key", "--window", wid, "ctrl+q")
        code = app.wait(timeout=30)
        err = app.stderr.read()
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        app.stderr.close()
    assert code == 0, err[-2000:]
    assert "Fatal Python error" not in err and "Traceback" not in err
    from resnext_gui.core.library import Library

    with Library(tmp_path / "data" / "resnext-gui" / "library.sqlite3") as library:
        assert library.gallery() == [str(folder / f"p{i:04}.png") for i in range(5000)]  # all listed, in order
