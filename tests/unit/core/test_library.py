"""The results library: answers found again by path or content, other models and changed files missed, damaged files set aside."""

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from resnext_gui.core import library as L
from resnext_gui.core.library import Library, LibraryError, model_key
from resnext_gui.core.prediction import Prediction, TopClass
from resnext_gui.core.preprocess import Preprocessing
from tests.support.helpers import REPO

KEY = model_key("ab" * 32, Preprocessing(232, 224))
OTHER_KEY = model_key("cd" * 32, Preprocessing(232, 224))


def prediction(path, labels=("espresso", "cup", "coffee mug"), seed=0) -> Prediction:
    rng = np.random.default_rng(seed)
    probs = sorted(rng.dirichlet(np.ones(len(labels))).tolist(), reverse=True)
    top = [TopClass(i + 1, 100 + i, label, p) for i, (label, p) in enumerate(zip(labels, probs))]
    return Prediction(path=str(path), ok=True, top=top, cams=rng.random((len(labels), 7, 7), dtype=np.float32),
                      crop=(10.0, 0.0, 490.0, 480.0), image_size=(500, 480), ms=12.5)


def photo(folder, name, content: bytes):
    p = folder / name
    p.write_bytes(content)
    return p


def test_round_trip_keeps_every_field(tmp_path):
    p = photo(tmp_path, "café 写真.jpg", b"jpeg bytes" * 100)
    pred = prediction(p)
    with Library(tmp_path / "lib.sqlite3", clock=lambda: 1_767_225_600.25) as lib:
        assert lib.note is None and lib.persistent and lib.count() == 0
        assert lib.lookup(p, KEY) is None
        lib.store(p, KEY, pred, thumbnail=b"\xff\xd8thumb", record={**pred.to_record(), "cam_png": "x.png"})
        entry = lib.lookup(p, KEY)
    assert entry is not None
    assert entry.path == str(p) and entry.model_key == KEY and entry.size == p.stat().st_size
    assert entry.top == pred.to_record()["top"]
    assert entry.maps.dtype == np.float32 and entry.maps.shape == (3, 7, 7)
    assert np.abs(entry.maps - pred.cams).max() <= 0.5 / 255 + 1e-6  # stored as uint8
    assert entry.crop == pred.crop and entry.image_size == pred.image_size and entry.thumbnail == b"\xff\xd8thumb"
    assert entry.record == pred.to_record()  # what was printed, without the map files of that run
    assert entry.classified_at == 1_767_225_600.25  # when it was stored, by the library's clock


def test_maps_of_another_stage_are_not_kept(tmp_path):
    p = photo(tmp_path, "a.jpg", b"a" * 10)
    pred = prediction(p)
    pred.layer = "layer3"
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, pred)
        assert lib.lookup(p, KEY).maps is None


def test_changed_file_and_other_model_miss_touched_file_hits(tmp_path):
    p = photo(tmp_path, "a.jpg", b"first" * 50)
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, prediction(p))
        assert lib.lookup(p, OTHER_KEY) is None  # other weights: not this model's answer
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes: still a hit
        assert lib.lookup(p, KEY) is not None
        assert lib.lookup(p, KEY).mtime_ns == st.st_mtime_ns + 10**9
        p.write_bytes(b"other" * 50)  # same size, new content
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
        assert lib.lookup(p, KEY) is None
        assert lib.lookup(p, KEY, min_top=1) is None
        lib.store(p, KEY, prediction(p, labels=("tabby",)))
        assert lib.lookup(p, KEY).top[0]["label"] == "tabby" and lib.count() == 1
        assert lib.lookup(p, KEY, min_top=2) is None  # fewer classes stored than asked for


def test_moved_and_copied_files_are_recognised_by_content(tmp_path):
    old = photo(tmp_path, "IMG_0001.jpg", b"holiday" * 100)
    (tmp_path / "sorted").mkdir()
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(old, KEY, prediction(old))
        moved = tmp_path / "sorted" / "beach.jpg"
        os.rename(old, moved)
        entry = lib.lookup(moved, KEY)
        assert entry is not None and entry.path == str(moved) and entry.top[0]["label"] == "espresso"
        assert lib.count() == 1 and lib.lookup(old, KEY) is None  # the old name's row went with the move
        copy = photo(tmp_path, "copy.jpg", moved.read_bytes())
        assert lib.lookup(copy, KEY) is not None and lib.count() == 2
        assert lib.lookup(copy, OTHER_KEY) is None


def test_lookup_many_in_order(tmp_path):
    paths = [photo(tmp_path, f"{i}.jpg", bytes([i]) * 20) for i in range(5)]
    with Library(tmp_path / "lib.sqlite3") as lib:
        for p in paths[::2]:
            lib.store(p, KEY, prediction(p))
        (tmp_path / "2.jpg").write_bytes(b"changed")
        got = lib.lookup_many([*paths, tmp_path / "missing.jpg"], KEY)
    assert [e is not None for e in got] == [True, False, False, False, True, False]
    assert got[0].path == str(paths[0]) and got[4].path == str(paths[4])


def test_search_forget_clear_gallery(tmp_path):
    names = ["Kaffee.jpg", "tabby.png", os.fsdecode(b"caf\xe9-latin1.jpg")]  # the last: not valid UTF-8
    paths = [photo(tmp_path, n, n.encode("utf-8", "surrogateescape") * 10) for n in names]
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(paths[0], KEY, prediction(paths[0], labels=("Espresso", "cup")))
        lib.store(paths[1], KEY, prediction(paths[1], labels=("tabby cat", "Égyptian")))
        lib.store(paths[2], OTHER_KEY, prediction(paths[2], labels=("plate",)))
        assert [e.path for e in lib.search("espresso")] == [str(paths[0])]
        assert [e.path for e in lib.search("KAFFEE")] == [str(paths[0])]  # the file name too
        assert [e.path for e in lib.search("égyptian")] == [str(paths[1])]  # any case, not only ASCII
        assert [e.path for e in lib.search("plate", model_key=KEY)] == []
        assert [e.path for e in lib.search("plate")] == [paths[2].as_posix()]
        lib.set_gallery(paths[::-1])
        assert lib.gallery() == [str(p) for p in paths[::-1]]
        assert lib.forget([paths[0], tmp_path / "never.jpg"]) == 1 and lib.count() == 2
        grown = lib.size_bytes()
        assert grown > 0
        lib.clear()
        assert lib.count() == 0 and lib.gallery() == [] and lib.search("") == []
        assert lib.size_bytes() <= grown


def test_a_search_lists_the_searched_class_first_on_top_then_by_its_probability_with_its_rank(tmp_path):
    """"tabby": photos with tabby as their top class first, then those with it further down their top five (at
    10 % or more: a 2 % guess is not found), each by tabby's probability; then those whose name alone matches."""
    def answer(path, classes):
        top = [TopClass(i + 1, 100 + i, label, p) for i, (label, p) in enumerate(classes)]
        return Prediction(path=str(path), ok=True, top=top, crop=(0.0, 0.0, 1.0, 1.0), image_size=(1, 1))

    stored = {  # name: top classes, in the order they are stored (newest last)
        "cup.jpg": [("espresso", 0.37), ("cup", 0.3), ("tabby", 0.15), ("lynx", 0.1), ("plate", 0.08)],
        "cat.jpg": [("tabby", 0.55), ("tiger cat", 0.3)],
        "retina.jpg": [("cleaver", 0.5), ("plate", 0.3), ("tabby", 0.02)],  # too unlikely to count
        "tabby_on_sofa.jpg": [("studio couch", 0.7)],  # by its name
        "kitten.jpg": [("tabby", 0.91)],
        "mug.jpg": [("coffee mug", 0.4), ("tabby", 0.35)],
    }
    with Library(tmp_path / "lib.sqlite3", clock=iter(range(100)).__next__) as lib:
        for name, classes in stored.items():
            lib.store(photo(tmp_path, name, name.encode() * 5), KEY, answer(tmp_path / name, classes))
        found = [(os.path.basename(e.path), rank) for e, rank in lib.search_ranked("TABBY")]
        assert found == [("kitten.jpg", 1), ("cat.jpg", 1), ("mug.jpg", 2), ("cup.jpg", 3),
                         ("tabby_on_sofa.jpg", None)]
        assert [os.path.basename(e.path) for e, _ in lib.search_ranked("tabby", limit=2)] == ["kitten.jpg", "cat.jpg"]
        assert [os.path.basename(e.path) for e, rank in lib.search_ranked("")] == list(stored)[::-1]  # newest first
        entry = lib.search_ranked("kitten")[0][0]
        assert entry.thumbnail is None and entry.top[0]["label"] == "tabby"  # whole entries
    assert L.matched_class([{"rank": 1, "label": "Tabby", "prob": 0.05}], "tabby") == (1, 0.05)  # the top class always


def test_default_path_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert L.default_library_path() == tmp_path / "data" / "resnext-gui" / "library.sqlite3"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert L.default_library_path() == L.Path.home() / ".local" / "share" / "resnext-gui" / "library.sqlite3"
    with Library() as lib:  # created with its folder
        assert lib.persistent and lib.path.is_file()


def _filled(path, n=30):
    with Library(path) as lib:
        for i in range(n):
            p = photo(path.parent, f"p{i}.jpg", f"photo {i}".encode() * 300)
            lib.store(p, KEY, prediction(p, seed=i), thumbnail=os.urandom(3000))
    return path


def _damage(kind, path, tmp_path):
    if kind == "garbage":
        path.write_bytes(os.urandom(5000))
    elif kind == "truncated":
        _filled(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "foreign":
        with sqlite3.connect(path) as other:  # some other program's database at this name
            other.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
            other.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
        other.close()
    elif kind == "symlink":
        os.symlink(_filled(tmp_path / "elsewhere.sqlite3"), path)
    elif kind == "fifo":
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "foreign", "symlink", "fifo"])
def test_damaged_or_foreign_file_is_set_aside_and_a_new_one_started(tmp_path, kind):
    path = tmp_path / "lib" / "library.sqlite3"
    path.parent.mkdir()
    _damage(kind, path, tmp_path)
    before = path.read_bytes() if kind != "fifo" else None
    target = tmp_path / "elsewhere.sqlite3"
    target_bytes = target.read_bytes() if kind == "symlink" else None
    with Library(path) as lib:
        assert lib.note and "set aside as library.sqlite3.damaged-" in lib.note and "new one was started" in lib.note
        assert lib.persistent and lib.count() == 0
        p = photo(tmp_path, "new.jpg", b"new photo")
        lib.store(p, KEY, prediction(p))
        assert lib.lookup(p, KEY) is not None
    aside = [f for f in os.listdir(path.parent) if f.startswith("library.sqlite3.damaged-")]
    assert len(aside) == 1
    moved = path.parent / aside[0]
    if kind == "symlink":  # the link was set aside, what it pointed at was not touched
        assert moved.is_symlink() and target.read_bytes() == target_bytes
    elif kind == "fifo":
        assert moved.is_fifo()
    elif kind != "truncated":
        assert moved.read_bytes() == before
    assert path.is_file() and not path.is_symlink()
    with Library(path) as again:  # the new one is this app's library from now on
        assert again.note is None and again.count() == 1


def test_damage_found_while_in_use_sets_aside_then_continues(tmp_path):
    path = _filled(tmp_path / "library.sqlite3")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = os.urandom(len(data) - page)  # every page but the first (the header and the schema) destroyed
    path.write_bytes(bytes(data))
    p = tmp_path / "p3.jpg"
    with Library(path) as lib:
        assert lib.lookup(p, KEY) is None
        assert lib.note and "set aside" in lib.note
        lib.store(p, KEY, prediction(p))
        assert lib.lookup(p, KEY) is not None and lib.count() == 1


def test_a_folder_or_device_at_the_path_is_never_renamed(tmp_path):
    folder = tmp_path / "library.sqlite3"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with Library(folder) as lib:
        assert lib.note and "a folder" in lib.note and not lib.persistent
        p = photo(tmp_path, "a.jpg", b"a")
        lib.store(p, KEY, prediction(p))  # kept in memory for this run
        assert lib.lookup(p, KEY) is not None
    assert (folder / "keep.txt").read_text() == "mine"
    with Library(os.devnull) as lib:
        assert lib.note and not lib.persistent
    assert os.path.exists(os.devnull)


def test_newer_library_is_left_untouched(tmp_path):
    path = _filled(tmp_path / "library.sqlite3", n=2)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={L.SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with Library(path) as lib:
        assert lib.note and "newer version" in lib.note and "left untouched" in lib.note
        assert not lib.persistent and lib.count() == 0
        p = tmp_path / "p0.jpg"
        lib.store(p, KEY, prediction(p))
        assert lib.lookup(p, KEY) is not None
    assert path.read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if ".damaged-" in f]


def test_migration_to_a_later_version_keeps_entries(tmp_path, monkeypatch):
    path = _filled(tmp_path / "library.sqlite3", n=3)

    def to_v2(conn):
        conn.execute("ALTER TABLE photos ADD COLUMN rating INTEGER")

    monkeypatch.setitem(L.MIGRATIONS, 2, to_v2)
    monkeypatch.setattr(L, "SCHEMA_VERSION", 2)
    with Library(path) as lib:
        assert lib.note is None and lib.count() == 3
        assert lib.lookup(tmp_path / "p1.jpg", KEY) is not None
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "rating" in [r[1] for r in conn.execute("PRAGMA table_info(photos)")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_store_raises_library_error_when_the_photo_is_gone(tmp_path):
    with Library(tmp_path / "lib.sqlite3") as lib:
        with pytest.raises(LibraryError, match="gone.jpg"):
            lib.store(tmp_path / "gone.jpg", KEY, prediction("gone.jpg"))
        lib.store(tmp_path / "gone.jpg", KEY, Prediction(path="gone.jpg", ok=False, error="x"))  # failures: not kept
        assert lib.count() == 0


WRITER = r"""
import sys
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
from resnext_gui.core.library import Library
folder, tag, key = Path(sys.argv[2]), sys.argv[3], sys.argv[4]
lib = Library(folder / "library.sqlite3")
assert lib.note is None, lib.note
print("ready", flush=True)
sys.stdin.readline()  # both start writing together
for i in range(40):
    p = folder / f"{tag}{i}.jpg"
    p.write_bytes(f"{tag} {i}".encode() * 200)
    top = [SimpleNamespace(rank=1, index=i, label=f"class {i}", prob=0.9)]
    pred = SimpleNamespace(ok=True, top=top, cams=None, layer="layer4", crop=None, image_size=None,
                           to_record=lambda: {"path": str(p), "ok": True})
    lib.store(p, key, pred, thumbnail=bytes(2000))
lib.close()
"""


def test_two_processes_writing_at_once(tmp_path):
    Library(tmp_path / "library.sqlite3").close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(tmp_path), tag, KEY], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) for tag in "ab"]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with Library(tmp_path / "library.sqlite3") as lib:
        assert lib.note is None and lib.count() == 80
        assert lib.lookup(tmp_path / "a39.jpg", KEY) is not None and lib.lookup(tmp_path / "b0.jpg", KEY) is not None
    conn = sqlite3.connect(tmp_path / "library.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_thumbnail_bytes_is_a_small_jpeg():
    import io

    from PIL import Image

    data = L.thumbnail_bytes(Image.new("RGB", (1200, 900), (200, 30, 30)))
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (L.THUMBNAIL_SIDE, 192)


def test_an_entry_that_does_not_read_back_is_a_miss_not_a_crash(tmp_path):
    p = photo(tmp_path, "a.jpg", b"a" * 10)
    q = photo(tmp_path, "b.jpg", b"b" * 10)
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, prediction(p))
        lib.store(q, KEY, prediction(q))
    conn = sqlite3.connect(tmp_path / "lib.sqlite3")
    with conn:
        conn.execute("UPDATE photos SET record='{not json' WHERE path=?", (os.fsencode(str(p)),))
    conn.close()
    with Library(tmp_path / "lib.sqlite3") as lib:
        assert lib.lookup(p, KEY) is None and "unreadable" in lib.note
        assert [e is not None for e in lib.lookup_many([p, q], KEY)] == [False, True]
        lib.store(p, KEY, prediction(p))  # computed again, it replaces the bad entry
        assert lib.lookup(p, KEY) is not None
