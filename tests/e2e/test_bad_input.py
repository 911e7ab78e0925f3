"""Every input gets exactly one answer, bad files never stop a batch, and bad checkpoints are refused by name."""

import json
import os
from pathlib import Path

import pytest
import torch
from torchvision.models import resnext50_32x4d

from resnext_gui.core.classifier import Classifier
from resnext_gui.core.paths import expand_paths
from tests.support.helpers import REPO, make_mixed_folder, run_cli


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("mixed") / "photos"
    expect = make_mixed_folder(root, photos["chelsea"])
    (root / "loop").symlink_to(root)  # a symlink loop inside the folder
    return root, expect


def test_classify_answers_every_file_once_and_goes_on(checkpoint, mixed):
    root, expect = mixed
    r = run_cli("classify", "--weights", checkpoint, "--batch-size", "4", root, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    got = {os.path.relpath(o["path"], root): o for o in out}
    assert len(out) == len(got) == len(expect), "each file exactly once (and the loop not followed)"
    assert {k: o["ok"] for k, o in got.items()} == expect
    errors = {k: o["error"] for k, o in got.items() if not o["ok"]}
    assert "empty" in errors["empty.jpg"]
    assert "not an image" in errors["text named as photo.jpg"]
    assert "truncated" in errors["truncated.jpg"] and "truncated" in errors["truncated.png"]
    assert "HEIC" in errors["heic renamed.jpg"]
    assert "too large" in errors["bomb.png"] and "decompression bomb" in errors["bomb.png"]


def test_file_that_disappears_after_the_scan(checkpoint, photos, tmp_path):
    import shutil

    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(photos["coffee"], tmp_path / name)
    paths = expand_paths([tmp_path])
    (tmp_path / "b.png").unlink()
    preds = list(Classifier(checkpoint, device="cpu").classify_many(paths))
    assert [p.ok for p in preds] == [True, False, True]
    assert "does not exist" in preds[1].error


def test_unreadable_file(photos, tmp_path):
    """A file without read permission. Root reads everything, so as root the check runs as user nobody."""
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        folder.chmod(0o755)
        locked = folder / "locked.jpg"
        shutil.copy(photos["coffee"], locked)
        locked.chmod(0)
        code = ("from resnext_gui.core.preprocess import load_image\n"
                "from resnext_gui.core.errors import ImageError\n"
                "try:\n    load_image(__import__('sys').argv[1])\nexcept ImageError as e:\n    print(e)\n")
        prefix = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                pytest.skip("running as root without setpriv: no way to drop read permission")
            prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
            probe = subprocess.run([*prefix, sys.executable, "-c", "import resnext_gui.core.preprocess"],
                                   capture_output=True, cwd=REPO, timeout=60)
            if probe.returncode != 0:
                pytest.skip("the project is not readable by an unprivileged user on this machine")
        r = subprocess.run([*prefix, sys.executable, "-c", code, str(locked)], capture_output=True, text=True,
                           cwd=REPO, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "permission denied" in r.stdout and "Traceback" not in r.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_lying_bytearray8_leaks_nothing_internal_on_stderr(tmp_path, photos):
    """A zip checkpoint whose pickle declares a 1 TB bytearray: refused by name, and nothing internal (the
    interpreter's "SystemError: deallocated bytearray object has exported buffers", MemoryError) on stderr."""
    from tests.unit.core.test_checkpoint import _LYING, _lying_file

    path = _lying_file(tmp_path / "lying.pth", _LYING["BYTEARRAY8"], legacy=False)
    r = run_cli("classify", "--weights", path, photos["coffee"], process=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert "is beyond the file's size" in r.stderr
    assert "SystemError" not in r.stderr and "MemoryError" not in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory, checkpoint):
    d = tmp_path_factory.mktemp("badckpt")
    state = torch.load(checkpoint, weights_only=True)
    wrong_fc = dict(state, **{"fc.bias": torch.zeros(10)})  # 1000-row weight, 10-entry bias
    torch.save(wrong_fc, d / "wrong_classifier.pth")
    narrow = resnext50_32x4d(weights=None).state_dict()
    narrow["fc.weight"] = torch.zeros(1000, 512)  # a head for another backbone width
    torch.save(narrow, d / "narrow_head.pth")
    (d / "truncated.pth").write_bytes(checkpoint.read_bytes()[:100_000])
    return d


@pytest.mark.parametrize("name,words", [
    ("wrong_classifier.pth", "fc.bias is (10,), expected (1000,)"),
    ("narrow_head.pth", "fc.weight is (1000, 512), expected (1000, 2048)"),
    ("truncated.pth", "truncated"),
])
def test_bad_checkpoint_exit_2_names_the_problem(bad_checkpoints, photos, name, words):
    r = run_cli("classify", "--weights", bad_checkpoints / name, photos["coffee"])
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_pipes_and_devices_are_not_photos(tmp_path):
    """A FIFO or /dev/zero named like a photo: "not a regular file", answered without opening it."""
    from resnext_gui.core.errors import ImageError
    from resnext_gui.core.preprocess import load_image

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        if not path.exists():
            continue
        with pytest.raises(ImageError, match="is not a regular file"):
            load_image(path)
