"""The standalone build: PyInstaller bundle built from build.spec, run from elsewhere in a bare environment."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = [pytest.mark.dist, pytest.mark.slow]
SIZE_LIMIT = 4.3e9  # bytes


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    pyinstaller = Path(sys.executable).with_name("pyinstaller")
    assert pyinstaller.exists(), "PyInstaller is part of the test extra; reinstall with `make test`"
    env = {**os.environ, "RESNEXT_GUI_WEIGHTS": ""}  # build without bundled weights: they come from the env below
    r = subprocess.run(
        [str(pyinstaller), "--noconfirm", "--log-level", "WARN", "--distpath", str(out / "dist"),
         "--workpath", str(out / "build"), str(REPO / "build.spec")],
        cwd=REPO, capture_output=True, text=True, timeout=900, env=env,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    exe = out / "dist" / "resnext-gui" / "resnext-gui"
    assert exe.is_file()
    shutil.rmtree(out / "build", ignore_errors=True)
    yield exe
    shutil.rmtree(out, ignore_errors=True)


def bare_run(exe, args, home, weights, cwd):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "QT_QPA_PLATFORM": "offscreen", "RESNEXT_GUI_WEIGHTS": str(weights)}
    return subprocess.run([str(exe), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_bundle_size_and_contents(bundle):
    root = bundle.parent
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    assert size <= SIZE_LIMIT, f"bundle is {size / 1e9:.2f} GB"
    internal = root / "_internal"
    assert list((internal / "torchvision").glob("_C*.so")), "torchvision's operators were left out"
    assert not (internal / "triton").exists()
    assert (internal / "assets" / "sample.jpg").is_file()


def test_self_test_in_bare_environment(bundle, checkpoint, tmp_path):
    r = bare_run(bundle, ["--self-test"], tmp_path, checkpoint, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["frozen"]
    assert summary["weights"]["origin"] == "RESNEXT_GUI_WEIGHTS"
    assert summary["cam"]["shape"] == [5, 7, 7]
    assert summary["window"].startswith("opened")
    assert "Traceback" not in r.stderr


def test_classify_in_bare_environment(bundle, checkpoint, tmp_path, photos):
    photo = tmp_path / "Ünïcödé photo.png"
    shutil.copy(photos["chelsea"], photo)
    r = bare_run(bundle, ["classify", photo, tmp_path / "missing.jpg"], tmp_path, checkpoint, tmp_path)
    assert r.returncode == 1, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["ok"] for line in lines] == [True, False]
    assert lines[0]["path"] == str(photo) and len(lines[0]["top"]) == 5
    assert "Traceback" not in r.stderr


def test_self_test_fails_loudly_without_weights(bundle, tmp_path):
    r = bare_run(bundle, ["--self-test"], tmp_path, "", tmp_path)
    assert r.returncode != 0
    assert json.loads(r.stdout.strip().splitlines()[-1])["failed_at"] == "weights"
    assert "self-test FAILED" in r.stderr
