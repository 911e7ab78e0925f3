"""Shared fixtures: offscreen Qt, an isolated offline environment, generated checkpoints and real photos."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.helpers import fit_head, make_checkpoint


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never reach the internet: only loopback connections are allowed."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1")) and self.family != socket.AF_UNIX:
            raise OSError(f"test tried to reach {address}: tests run offline")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache folder for the session: each checkpoint is converted for OpenVINO once, not once per test."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path_factory, model_cache):
    """No user weights, caches or settings leak in: TORCH_HOME and HOME point at empty folders."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(model_cache))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))  # the results library, desktop entries
    monkeypatch.delenv("RESNEXT_GUI_WEIGHTS", raising=False)
    return home


FLAVOURS = {"light": "resnext-gui", "cuda": "resnext-gui-cuda"}  # build.spec's flavours and their folders
# The Debian packages of the libraries the bundle carries for Qt's platform plugins (packaging/bundle_libs.py)
BUILD_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
                  "libxkbcommon-x11-0", "libwayland-cursor0", "libwayland-egl1")


def build_machine_lacks() -> list[str]:
    """The libraries build.spec must carry that this machine does not have (the build refuses without them)."""
    import importlib.util

    from tests.support.helpers import REPO

    spec = importlib.util.spec_from_file_location("bundle_libs", REPO / "packaging" / "bundle_libs.py")
    libs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(libs)
    return [name for name in libs.PLATFORM_LIBS if libs.system_library(name) is None]



@pytest.fixture(scope="session", params=sorted(FLAVOURS))
def bundle(request, tmp_path_factory):
    """A standalone app, built once per test session from build.spec: the light CPU app (~1 min, 0.3 GB) and the
    CUDA app (~3 min, 4 GB). Its executable (tests.support.bundle_scan.is_light tells which it is)."""
    import shutil
    import subprocess
    import sys

    from tests.support.helpers import REPO

    flavour = request.param
    prebuilt = os.environ.get(f"RESNEXT_GUI_BUNDLE_{flavour.upper()}")  # test a bundle built before (make dist)
    if prebuilt:
        yield Path(prebuilt)
        return
    missing = build_machine_lacks()
    if missing and not os.environ.get("CI"):  # CI installs them (.ci/run), and there a missing one is a failure
        pytest.skip(f"building the standalone app needs {', '.join(missing)}: "
                    f"apt-get install {' '.join(BUILD_PACKAGES)} (.ci/run installs them)")
    out = tmp_path_factory.mktemp(f"dist-{flavour}")
    pyinstaller = Path(sys.executable).with_name("pyinstaller")
    assert pyinstaller.exists(), "PyInstaller is part of the test extra; reinstall with `make test`"
    # build without bundled weights: tests give them by the environment
    env = {**os.environ, "RESNEXT_GUI_WEIGHTS": "", "RESNEXT_GUI_FLAVOUR": flavour}
    r = subprocess.run(
        [str(pyinstaller), "--noconfirm", "--log-level", "WARN", "--distpath", str(out / "dist"),
         "--workpath", str(out / "build"), str(REPO / "build.spec")],
        cwd=REPO, capture_output=True, text=True, timeout=900, env=env,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    exe = out / "dist" / FLAVOURS[flavour] / "resnext-gui"
    assert exe.is_file()
    shutil.rmtree(out / "build", ignore_errors=True)
    yield exe
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, photos) -> Path:
    """The official file's keys and shapes, torchvision's seeded init, and a head fitted so that each test
    photo has its own confident class (tests.support.helpers.PHOTO_CLASSES): answers that depend on the image."""
    path = make_checkpoint(tmp_path_factory.mktemp("weights") / "resnext50_seed0.pth")
    return fit_head(path, {"rocket": photos["rocket_jpg"], **photos})


def _skimage(name: str) -> np.ndarray:
    from skimage import data

    return getattr(data, name)()


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real public-domain photos from scikit-image: lossless PNGs and one JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in ("chelsea", "astronaut", "coffee"):
        out[name] = folder / f"{name}.png"
        Image.fromarray(_skimage(name)).save(out[name])
    out["rocket_jpg"] = folder / "rocket.jpg"
    Image.fromarray(_skimage("rocket")).save(out["rocket_jpg"], quality=92)
    return out


@pytest.fixture(scope="session")
def big_jpeg(tmp_path_factory) -> Path:
    """A 12-megapixel JPEG (4000x3000) made from a real photo, the size phones produce."""
    path = tmp_path_factory.mktemp("big") / "coffee_12mp.jpg"
    Image.fromarray(_skimage("coffee")).resize((4000, 3000), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


@pytest.fixture
def checkpoint_is_v2(monkeypatch, checkpoint):
    """Make the generated checkpoint stand in for the official V2 file (its hash prefix and size)."""
    import dataclasses
    import hashlib

    from resnext_gui.core import weights as W

    payload = checkpoint.read_bytes()
    fake = dataclasses.replace(W.VARIANTS["v2"], hash_prefix=hashlib.sha256(payload).hexdigest()[:8],
                               size_bytes=len(payload), sha512=None)
    monkeypatch.setitem(W.VARIANTS, "v2", fake)
    return payload


# Markers by place, so a run can pick its scope: `gui` (Qt widget and worker tests, tests/unit/ui and
# tests/unit/worker), `e2e` (runs the app or the CLI as a process: tests/e2e, tests/standalone, and the layering proof
# that imports the core with Qt blocked); `slow` and `dist` are set on the tests themselves.
GUI_FOLDERS = {"ui", "worker"}
E2E_FOLDERS = {"e2e", "standalone"}  # (never a folder named "dist": pytest does not look in one)
E2E_FILES = {"test_no_qt.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = set(item.path.relative_to(item.config.rootpath).parts[:-1])
        if parts & GUI_FOLDERS:
            item.add_marker(pytest.mark.gui)
        if parts & E2E_FOLDERS or item.path.name in E2E_FILES:
            item.add_marker(pytest.mark.e2e)
