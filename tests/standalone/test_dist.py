"""The standalone build (built once per session, see conftest.py): contents, glibc floor, links, licences; bare runs."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from tests.support import bundle_scan
from tests.support.helpers import REPO

_spec = importlib.util.spec_from_file_location("bundle_libs", REPO / "packaging" / "bundle_libs.py")
bundle_libs = importlib.util.module_from_spec(_spec)  # the build's list of carried and system libraries
_spec.loader.exec_module(bundle_libs)

pytestmark = [pytest.mark.dist, pytest.mark.slow]
SIZE_LIMIT = {True: 400e6, False: 4.3e9}  # bytes, light app and CUDA app
ARCHIVE_LIMIT = 160e6  # the light app's download


def bare_run(exe, args, home, weights, cwd):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "QT_QPA_PLATFORM": "offscreen", "RESNEXT_GUI_WEIGHTS": str(weights)}
    return subprocess.run([str(exe), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_bundle_size_and_contents(bundle):
    root = bundle.parent
    light = bundle_scan.is_light(bundle)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"{root.name}: {size / 1e6:.0f} MB unpacked")
    assert size <= SIZE_LIMIT[light], f"bundle is {size / 1e6:.0f} MB"
    internal = root / "_internal"
    if light:
        assert bundle_scan.torch_or_nvidia_files(root) == []
        assert (internal / "openvino" / "libs").is_dir()
    else:
        assert list((internal / "torchvision").glob("_C*.so")), "torchvision's operators were left out"
    assert not (internal / "triton").exists()
    assert bundle_scan.ray_files(root) == [], "Ray is the cluster extra of a Python install, not part of the app"
    assert not list(internal.rglob("cluster.py*")), "nor the driver of `classify --ray`"
    assert not list(internal.glob("openvino_telemetry*")), "the app is offline: no telemetry package"
    frontends = sorted(p.name.split(".")[0] for p in (internal / "openvino" / "libs").glob("*frontend*"))
    assert frontends == ["libopenvino_ir_frontend"], "only the IR frontend: the CPU plugin reads its cache with it"
    assert (internal / "assets" / "sample.jpg").is_file()


def test_the_ray_scan_finds_what_a_bundle_of_ray_would_hold(tmp_path):
    """The check above can fail: Ray's package, its core library, its metadata and pyarrow are found by name."""
    for name in ("_internal/ray/__init__.pyc", "_internal/ray/_raylet.so", "_internal/ray-2.60.0.dist-info/METADATA",
                 "_internal/pyarrow/lib.so", "_internal/resnext_gui/cli/classify.pyc", "_internal/rayon.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = bundle_scan.ray_files(tmp_path)
    assert {"_internal/ray", "_internal/ray/_raylet.so", "_internal/ray-2.60.0.dist-info", "_internal/pyarrow"} <= set(found)
    assert not [f for f in found if "resnext_gui" in f or "rayon" in f]


def test_light_app_archive(bundle, tmp_path):
    """`make dist`'s download: the light app's folder as one .tar.xz, small enough to publish as one file."""
    if not bundle_scan.is_light(bundle):
        pytest.skip("the archive is made of the light app")
    archive = tmp_path / "resnext-gui.tar.xz"
    subprocess.run([str(REPO / "packaging" / "make-archive.sh"), str(bundle.parent), str(archive)], check=True, timeout=600)
    print(f"archive: {archive.stat().st_size / 1e6:.0f} MB")
    assert archive.stat().st_size <= ARCHIVE_LIMIT
    listing = subprocess.run(["tar", "-tJf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
    assert f"{bundle.parent.name}/resnext-gui" in listing and not any("torch" in name for name in listing)


GLIBC_CEILING = (2, 35)  # the newest glibc the bundle may need: Ubuntu 22.04 LTS has 2.35


def test_no_file_needs_a_glibc_newer_than_2_35(bundle):
    table = bundle_scan.glibc_floor(bundle.parent)
    assert len(table) > 100  # the scan saw the libraries, not an empty folder
    too_new = {str(p.relative_to(bundle.parent)): bundle_scan.fmt(v["GLIBC_"]) for p, v in table.items()
               if v.get("GLIBC_", ()) > GLIBC_CEILING}
    assert not too_new, f"files needing a glibc newer than 2.35: {too_new}"


def test_no_dangling_links(bundle):
    assert bundle_scan.dangling_links(bundle.parent) == []


def test_platform_libraries_carried_and_system_ones_left_out(bundle):
    internal = bundle.parent / "_internal"
    names = {p.name for p in internal.iterdir()}
    assert not set(bundle_libs.PLATFORM_LIBS) - names, "a library Qt's platform plugins need is not bundled"
    shadowing = sorted(n for n in names if bundle_libs.from_system(n))
    assert not shadowing, f"bundled, but the system's copy must be used: {shadowing}"
    plugins = internal / "PySide6" / "Qt" / "plugins"
    assert (plugins / "platforms" / "libqxcb.so").is_file() and (plugins / "platforms" / "libqwayland.so").is_file()
    assert not (plugins / "platformthemes" / "libqgtk3.so").exists()
    assert (internal / "PySide6" / "Qt" / "lib" / "libQt6Svg.so.6").is_file()  # libadwaita decorations need it
    if not bundle_scan.is_light(bundle):
        builtins = list(internal.glob("libnvrtc-builtins.so.*"))
        assert builtins and all(p.resolve().is_file() for p in builtins)


NVRTC_COMPILE = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), b'extern "C" __global__ void k(float *x) { x[0] = 1; }', b"k.cu", 0, None, None) == 0
sys.exit(lib.nvrtcCompileProgram(prog, 0, None))
"""


def test_nvrtc_finds_its_builtins_in_the_bundle(bundle):
    """libnvrtc opens libnvrtc-builtins by name when it compiles (no GPU needed), searching the library path the
    app's launcher sets to _internal/: compiling fails with status 7 when the builtins are missing."""
    if bundle_scan.is_light(bundle):
        pytest.skip("the light app carries no CUDA")
    internal = bundle.parent / "_internal"
    r = subprocess.run([sys.executable, "-c", NVRTC_COMPILE, str(internal / "libnvrtc.so.13")], capture_output=True,
                       text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(internal)})
    assert r.returncode == 0, r.stderr


def test_icon_and_licences_in_the_bundle(bundle):
    root = bundle.parent
    assert (root / "resnext-gui.png").read_bytes() == (REPO / "assets" / "icon.png").read_bytes()
    licences = root / "LICENSES"
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (licences / "Qt-PySide6" / "LGPL-3.txt").read_text()
    packages = licences / "python-packages"
    expected = ["numpy", "pillow", "certifi", "openvino"]
    if not bundle_scan.is_light(bundle):
        expected += ["torch", "torchvision", "nvidia-cublas", "nvidia-cudnn-cu13"]
    for name in expected:
        folder = next((d for d in packages.iterdir() if d.name.lower().replace("_", "-") == name), None)
        assert folder and any(f.is_file() and f.stat().st_size for f in folder.rglob("*")), f"no licence for {name}"
    system = licences / "system-libraries"
    index = (licences / "README.txt").read_text()
    for lib in ("libpython3", "libxcb-icccm.so.4", "libglib-2.0.so.0", "libssl.so.3"):
        assert lib in index, f"{lib}: no licence listed"
    assert len(list(system.iterdir())) >= 10


def test_self_test_in_bare_environment(bundle, checkpoint, tmp_path):
    r = bare_run(bundle, ["--self-test"], tmp_path, checkpoint, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["frozen"]
    assert summary["weights"]["origin"] == "RESNEXT_GUI_WEIGHTS"
    assert summary["cam"]["shape"] == [5, 7, 7]
    assert summary["window"].startswith("opened")
    assert summary["qt_binding"].startswith("keeps its references")  # the bundled PySide6 loses no references
    if importlib.util.find_spec("openvino") is not None:  # bundled where it is installed: it computed the sample
        assert summary["backend"] == "openvino", summary.get("backend_note")
    assert "Traceback" not in r.stderr


def test_second_start_uses_the_compiled_network(bundle, checkpoint, tmp_path):
    """The first start compiles the network for this CPU and OpenVINO caches it; later starts load it from there."""
    runs = [bare_run(bundle, ["--self-test"], tmp_path, checkpoint, tmp_path) for _ in range(2)]
    summaries = [json.loads(r.stdout.strip().splitlines()[-1]) for r in runs]
    assert all(s["ok"] for s in summaries), [r.stderr for r in runs]
    assert [s["compiled_from_cache"] for s in summaries] == [False, True]
    assert not (tmp_path / "intel").exists()  # OpenVINO's telemetry writes nothing to the home folder


def test_classify_in_bare_environment(bundle, checkpoint, tmp_path, photos):
    """classify, its results library and its keywords (the bundled exiv2) in the frozen app."""
    from resnext_gui.core.xmp import read_keywords

    photo = tmp_path / "Ünïcödé photo.png"
    shutil.copy(photos["chelsea"], photo)
    args = ["classify", "--library", "--xmp", photo, tmp_path / "missing.jpg"]
    r = bare_run(bundle, args, tmp_path, checkpoint, tmp_path)
    assert r.returncode == 1, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["ok"] for line in lines] == [True, False]
    assert lines[0]["path"] == str(photo) and len(lines[0]["top"]) == 5
    assert "Traceback" not in r.stderr
    assert lines[0]["xmp"] == f"{photo}.xmp" and lines[0]["top"][0]["label"] in read_keywords(f"{photo}.xmp")[0]
    again = bare_run(bundle, args[:2] + [photo], tmp_path, checkpoint, tmp_path)
    assert again.returncode == 0, again.stderr
    (record,) = [json.loads(line) for line in again.stdout.splitlines()]
    assert record["cached"] is True and record["top"] == lines[0]["top"]


def test_classify_on_a_cluster_is_not_for_the_app(bundle, checkpoint, tmp_path, photos):
    r = bare_run(bundle, ["classify", "--ray", "auto", photos["coffee"]], tmp_path, checkpoint, tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert "this standalone app does not carry" in r.stderr and "pip install 'resnext-gui[cluster]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_self_test_fails_loudly_without_weights(bundle, tmp_path):
    r = bare_run(bundle, ["--self-test"], tmp_path, "", tmp_path)
    assert r.returncode != 0
    assert json.loads(r.stdout.strip().splitlines()[-1])["failed_at"] == "weights"
    assert "self-test FAILED" in r.stderr


def test_desktop_entry_of_the_bundle_starts_the_bundle(bundle, tmp_path):
    data = tmp_path / "data"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(data)}
    r = subprocess.run([str(bundle), "--install-desktop-entry"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    entry = (data / "applications" / "resnext-gui.desktop").read_text()
    assert f"Exec={bundle} %F" in entry.splitlines()
    assert (data / "icons/hicolor/256x256/apps/resnext-gui.png").read_bytes() == (REPO / "assets" / "icon.png").read_bytes()
