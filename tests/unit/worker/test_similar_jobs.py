"""The jobs of Find Similar and Find Duplicates (worker/jobs/similar.py) on the real worker, and Move to Trash and
its Undo on the real desktop trash (the freedesktop.org trash under $XDG_DATA_HOME, as QFile.moveToTrash keeps it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from resnext_gui.worker.jobs.model import LoadJob
from resnext_gui.worker.jobs.similar import (
    FindDuplicatesJob,
    FindSimilarJob,
    TrashJob,
    UntrashJob,
    VectorMemo,
    move_to_trash,
    restore_from_trash,
)
from resnext_gui.worker.queue import CANCELLED
from resnext_gui.worker.runner import Worker
from tests.support.helpers import REPO, near_duplicates
from tests.support.ui_fakes import FakeFactory

TIMEOUT = 60_000


def trash_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "Trash"


class Asked:
    """One job sent to a worker, and what came back to its callbacks."""

    def __init__(self, qtbot, worker, job, on_progress=None):
        self.result = self.failure = None
        self.progress: list[tuple[int, int]] = []

        def progress(done, total):
            self.progress.append((done, total))
            if on_progress is not None:
                on_progress(done, total)

        self.job = job
        worker.submit(job, lambda r: setattr(self, "result", r), lambda m: setattr(self, "failure", m), progress)
        qtbot.waitUntil(lambda: self.result is not None or self.failure is not None, timeout=TIMEOUT)


@pytest.fixture
def running(qtbot, tmp_path):
    """A real worker with the fake classifier (its features a projection of the pixels, its dHash real), keeping
    a results library in the test's folder."""
    factory = FakeFactory()
    worker = Worker("first.pth", "cpu", classifier_factory=factory, library=tmp_path / "library.sqlite3")
    worker.start()
    assert Asked(qtbot, worker, LoadJob("first.pth", "cpu")).failure is None
    yield worker, factory
    assert worker.stop()


def passes(factory) -> list[str]:
    return [name for clf in factory.made for name, _layer in clf.calls]


# ---- Find Similar, Find Duplicates ----
def test_find_similar_ranks_a_photos_copies_first_and_reuses_what_it_gathered(qtbot, running, photos, tmp_path):
    worker, factory = running
    album = near_duplicates(photos, tmp_path / "album")
    paths = [str(p) for p in album.values()]
    memo = VectorMemo()
    first = Asked(qtbot, worker, FindSimilarJob(paths, memo, target=str(album["coffee"])))
    assert first.failure is None
    ranked = [Path(p).name for p, _s in first.result.ranked]
    assert sorted(ranked[:2]) == ["coffee-bright.jpg", "coffee-small.jpg"] and len(ranked) == len(paths) - 1
    assert first.result.ranked[1][1] > first.result.ranked[2][1]  # the copies score above the others
    assert first.result.computed == len(paths) and len(passes(factory)) == len(paths)
    assert first.progress[-1] == (len(paths), len(paths))
    index = memo.last.found.index

    again = Asked(qtbot, worker, FindSimilarJob(paths, memo, target=str(album["chelsea"])))
    assert [Path(p).name for p, _s in again.result.ranked][0] == "chelsea-copy.jpg"
    assert len(passes(factory)) == len(paths) and again.result.computed == 0  # no photo computed again
    assert memo.last.found.index is index  # the index itself reused, not built again


def test_a_photo_changed_since_is_gathered_again_never_compared_by_its_old_features(qtbot, running, photos, tmp_path):
    worker, factory = running
    album = near_duplicates(photos, tmp_path / "album")
    paths = [str(p) for p in album.values()]
    memo = VectorMemo()
    Asked(qtbot, worker, FindSimilarJob(paths, memo, target=str(album["coffee"])))
    with Image.open(album["astronaut"]) as im:
        im.convert("RGB").save(album["coffee-small"], "JPEG", quality=90)  # now a copy of the astronaut
    after = Asked(qtbot, worker, FindSimilarJob(paths, memo, target=str(album["astronaut"])))
    assert after.result.ranked[0][0] == str(album["coffee-small"]) and after.result.ranked[0][1] > 0.95
    assert passes(factory)[len(paths):] == ["coffee-small.jpg"]  # that photo alone computed (the rest: the library)


def test_duplicates_groups_with_the_keeper_first_at_the_threshold_asked(qtbot, running, photos, tmp_path):
    worker, factory = running
    album = near_duplicates(photos, tmp_path / "album")
    paths = [str(p) for p in album.values()]
    memo = VectorMemo()
    found = Asked(qtbot, worker, FindDuplicatesJob(paths, memo, threshold=0.6)).result
    groups = [[Path(p).name for p in g.paths] for g in found.groups]
    # coffee.png and coffee-bright.jpg have the most pixels; coffee.png is the newer file: it is kept
    assert groups[0] == ["coffee.png", "coffee-bright.jpg", "coffee-small.jpg"] or \
        groups[0] == ["coffee.png", "coffee-small.jpg", "coffee-bright.jpg"]
    assert {tuple(sorted(g)) for g in groups} == {("coffee-bright.jpg", "coffee-small.jpg", "coffee.png"),
                                                  ("chelsea-copy.jpg", "chelsea.png")}
    coffee = found.groups[0]
    assert coffee.keep == str(album["coffee"]) and found.figures[coffee.keep] == 1.0
    assert found.pixels[str(album["coffee"])] == found.pixels[str(album["coffee-bright"])] > \
        found.pixels[str(album["coffee-small"])]
    assert found.sizes[str(album["coffee-small"])] == album["coffee-small"].stat().st_size
    cat = next(g for g in found.groups if "chelsea.png" in g.paths[-1] or "chelsea.png" in g.paths[0])
    assert cat.keep == str(album["chelsea-copy"])  # the same pixels as chelsea.png, and the newer file
    before = memo.last.found
    os.utime(album["coffee-bright"], ns=(1_800_000_000_000_000_000,) * 2)  # now the newest of the two largest
    again = Asked(qtbot, worker, FindDuplicatesJob(paths, memo, threshold=0.6)).result
    assert again.groups[0].keep == str(album["coffee-bright"])
    assert memo.last.found is not before  # a file changed: gathered again (its bytes the same: no forward pass)
    assert len(passes(factory)) == len(paths)


def test_gathering_stops_between_photos_when_cancelled(qtbot, running, photos, tmp_path):
    from tests.support.helpers import copies

    worker, factory = running
    files = [str(p) for p in copies([photos["coffee"], photos["chelsea"]], 40, tmp_path)]
    job = FindSimilarJob(files, VectorMemo(), target=files[0])
    asked = Asked(qtbot, worker, job, on_progress=lambda done, total: job.cancel.set())
    assert asked.failure == CANCELLED
    assert 1 <= len(passes(factory)) < len(files)


# ---- the trash ----
def test_move_to_trash_lands_in_the_xdg_trash_and_undo_puts_it_back(tmp_path):
    photo = tmp_path / "album" / "copy.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"\xff\xd8 the photo's bytes")
    out = move_to_trash([str(photo)])
    assert out.failed == [] and not photo.exists()
    (path, where), = out.moved
    assert path == str(photo) and Path(where) == trash_dir() / "files" / "copy.jpg"
    info = trash_dir() / "info" / "copy.jpg.trashinfo"
    text = info.read_text()
    assert f"Path={photo}" in text and "DeletionDate=" in text  # what the file manager restores it by
    assert Path(where).read_bytes() == b"\xff\xd8 the photo's bytes"

    back = restore_from_trash(out.moved)
    assert back.restored == [str(photo)] and back.failed == []
    assert photo.read_bytes() == b"\xff\xd8 the photo's bytes"
    assert not Path(where).exists() and not info.exists()


def test_undo_never_overwrites_a_file_now_at_the_photos_place(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"old")
    out = move_to_trash([str(photo)])
    photo.write_bytes(b"a new file at that name")
    back = restore_from_trash(out.moved)
    assert back.restored == [] and back.failed[0][0] == str(photo) and "another file" in back.failed[0][1]
    assert photo.read_bytes() == b"a new file at that name"
    assert Path(out.moved[0][1]).read_bytes() == b"old"  # still in the trash, restorable


def test_two_files_of_one_name_are_both_kept_apart_in_the_trash_and_come_back(tmp_path):
    a, b = tmp_path / "a" / "IMG.jpg", tmp_path / "b" / "IMG.jpg"
    for f, data in ((a, b"first"), (b, b"second")):
        f.parent.mkdir()
        f.write_bytes(data)
    out = move_to_trash([str(a), str(b)])
    assert len({where for _p, where in out.moved}) == 2
    assert restore_from_trash(out.moved).restored == [str(a), str(b)]
    assert a.read_bytes() == b"first" and b.read_bytes() == b"second"
    assert list((trash_dir() / "info").iterdir()) == []


READ_ONLY = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QFile
from resnext_gui.worker.jobs.similar import move_to_trash
QFile  # imported before the user changes: nobody may not read the installation
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)  # root renames anywhere: as nobody, a folder of mode 0555 is read-only
out = move_to_trash(sys.argv[2:])
print(json.dumps({"moved": out.moved, "failed": out.failed}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to act as nobody (root may rename in a read-only folder)")
def test_a_file_in_a_read_only_folder_is_said_and_the_others_go_on(tmp_path):
    import json
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="resnext-trash-ro-"))  # outside pytest's private folder: nobody may enter it
    try:
        base.chmod(0o755)
        (base / "data").mkdir(mode=0o777)
        (base / "ro").mkdir()
        (base / "rw").mkdir(mode=0o777)
        for folder in ("data", "rw"):
            (base / folder).chmod(0o777)
        stuck, free = base / "ro" / "a.jpg", base / "rw" / "b.jpg"
        stuck.write_bytes(b"a")
        free.write_bytes(b"b")
        os.chown(free, 65534, 65534)
        (base / "ro").chmod(0o555)
        env = {**os.environ, "XDG_DATA_HOME": str(base / "data"), "HOME": str(base / "data")}
        r = subprocess.run([sys.executable, "-c", READ_ONLY, str(REPO), str(stuck), str(free)], capture_output=True,
                           text=True, timeout=60, cwd="/", env=env)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert [p for p, _why in out["failed"]] == [str(stuck)]
        assert "read-only" in out["failed"][0][1] and str(base / "ro") in out["failed"][0][1]
        assert [p for p, _w in out["moved"]] == [str(free)] and not free.exists()
        assert stuck.read_bytes() == b"a"  # untouched
        assert not list((base / "data" / "Trash" / "info").glob("a.jpg*"))  # no stray entry for the file left
    finally:
        for folder in base.rglob("*"):
            if folder.is_dir():
                folder.chmod(0o755)
        base.chmod(0o755)
        shutil.rmtree(base)


def test_the_trash_jobs_run_on_the_worker(qtbot, running, tmp_path):
    worker, _factory = running
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"x")
    moved = Asked(qtbot, worker, TrashJob([str(photo), str(tmp_path / "gone.jpg")])).result
    assert [p for p, _w in moved.moved] == [str(photo)]
    assert moved.failed == [(str(tmp_path / "gone.jpg"), "the file is no longer there")]
    assert Asked(qtbot, worker, UntrashJob(moved.moved)).result.restored == [str(photo)] and photo.exists()
