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


def _count_hashes(monkeypatch):
    hashed = []
    real = L.content_hash

    def counting(path):
        hashed.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(L, "content_hash", counting)
    return hashed


@pytest.fixture
def settled(monkeypatch):
    """Stamps taken now count as settled (as if the files had last changed long ago): the change stamp alone
    must then tell a changed file."""
    monkeypatch.setattr(L, "RACY_NS", 0)


def test_a_file_rewritten_in_place_with_its_size_and_mtime_restored_is_computed_again(tmp_path, settled, monkeypatch):
    cat, coffee = b"tabby pixels " * 40, b"coffee pixel " * 40  # the same size
    p = photo(tmp_path, "photo.jpg", cat)
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, prediction(p, labels=("tabby",)))
        hashed = _count_hashes(monkeypatch)
        assert lib.lookup(p, KEY).top[0]["label"] == "tabby" and hashed == []  # unchanged: not even read
        st = p.stat()
        p.write_bytes(coffee)  # another photo's bytes, in place
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # its mtime set back, as `touch -r` or a sync tool does
        assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert lib.lookup(p, KEY) is None and hashed == ["photo.jpg"]
        assert lib.lookup_many([p], KEY) == [None]


def test_a_file_replaced_by_mv_with_its_size_and_mtime_is_computed_again(tmp_path, settled):
    p = photo(tmp_path, "photo.jpg", b"tabby pixels " * 40)
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, prediction(p, labels=("tabby",)))
        st = p.stat()
        other = photo(tmp_path, ".incoming", b"coffee pixel " * 40)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, p)  # a new inode under the old name
        assert lib.lookup(p, KEY) is None
        assert lib.lookup_many([p], KEY) == [None]


def test_the_same_bytes_with_a_new_stamp_are_a_hit_and_the_stamp_is_kept(tmp_path, settled, monkeypatch):
    p = photo(tmp_path, "photo.jpg", b"tabby pixels " * 40)
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, prediction(p, labels=("tabby",)))
        copy = photo(tmp_path, ".copy", p.read_bytes())
        os.replace(copy, p)  # the same bytes, copied back over it (another inode, another change time)
        hashed = _count_hashes(monkeypatch)
        assert lib.lookup(p, KEY).top[0]["label"] == "tabby" and hashed == ["photo.jpg"]
        assert lib.lookup(p, KEY) is not None and lib.lookup_many([p], KEY)[0] is not None
        assert hashed == ["photo.jpg"]  # the new stamp was kept: read once, then fast again


def test_a_stamp_taken_just_after_a_change_is_checked_by_content_once(tmp_path, monkeypatch):
    """A file may change again within the same tick of the file system's clock without its change time moving:
    a stamp taken that soon is kept without it, so the next look hashes the file, and keeps the stamp once settled."""
    p = photo(tmp_path, "photo.jpg", b"tabby pixels " * 40)
    with Library(tmp_path / "lib.sqlite3") as lib:
        lib.store(p, KEY, prediction(p, labels=("tabby",)))  # the file was written just now
        hashed = _count_hashes(monkeypatch)
        assert lib.lookup(p, KEY) is not None and hashed == ["photo.jpg"]
        later = L.time.time_ns() + 2 * L.RACY_NS
        monkeypatch.setattr(L.time, "time_ns", lambda: later)
        assert lib.lookup(p, KEY) is not None and hashed == ["photo.jpg", "photo.jpg"]  # settled now: kept
        assert lib.lookup(p, KEY) is not None and hashed == ["photo.jpg", "photo.jpg"]


def test_a_version_1_library_migrates_and_keeps_its_entries(tmp_path, settled):
    """tests/data/library-v1.sqlite3 was written by the version-1 Library (three entries stored from
    /tmp/resnext-gui-v1/photos/{cat,coffee,rocket}.jpg, each holding ``f"version 1 photo {name}" * 20``, and that
    gallery), checkpointed and vacuumed."""
    path = tmp_path / "library.sqlite3"
    path.write_bytes((REPO / "tests" / "data" / "library-v1.sqlite3").read_bytes())
    with Library(path) as lib:
        assert lib.take_note() is None and lib.persistent and lib.count() == 3
        assert lib.gallery() == [f"/tmp/resnext-gui-v1/photos/{n}" for n in ("cat.jpg", "coffee.jpg", "rocket.jpg")]
        assert [e.top[0]["label"] for e in lib.search("tabby")] == ["tabby"]
        moved = photo(tmp_path, "my cat.jpg", b"version 1 photo cat.jpg" * 20)  # found by its bytes, stamp filled in
        entry = lib.lookup(moved, KEY)
        assert entry is not None and entry.top[0]["label"] == "tabby" and entry.maps.shape == (2, 7, 7)
        assert lib.lookup_many([moved], KEY)[0].record == entry.record
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == L.SCHEMA_VERSION >= 2
        assert set(L.STAMP_COLUMNS) <= {r[1] for r in conn.execute("PRAGMA table_info(photos)")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


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
    if kind == "truncated":
        _filled(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif kind == "symlink":
        os.symlink(_filled(tmp_path / "elsewhere.sqlite3"), path)
    elif kind == "fifo":
        os.mkfifo(path)


@pytest.mark.parametrize("kind", ["truncated", "symlink", "fifo"])
def test_a_damaged_library_a_link_or_a_pipe_is_set_aside_and_a_new_one_started(tmp_path, kind):
    path = tmp_path / "lib" / "library.sqlite3"
    path.parent.mkdir()
    _damage(kind, path, tmp_path)
    target = tmp_path / "elsewhere.sqlite3"
    target_bytes = target.read_bytes() if kind == "symlink" else None
    with Library(path) as lib:
        note = lib.take_note()
        assert note and "set aside as library.sqlite3.damaged-" in note and "new one was started" in note
        assert lib.take_note() is None  # said once
        assert lib.persistent and lib.count() == 0
        p = photo(tmp_path, "new.jpg", b"new photo")
        lib.store(p, KEY, prediction(p))
        assert lib.lookup(p, KEY) is not None
    aside = [f for f in os.listdir(path.parent) if f.startswith("library.sqlite3.damaged-")]
    assert len(aside) == 1 and aside[0] in note  # the message names the file's new name
    moved = path.parent / aside[0]
    if kind == "symlink":  # the link was set aside, what it pointed at was not touched
        assert moved.is_symlink() and target.read_bytes() == target_bytes
    elif kind == "fifo":
        assert moved.is_fifo()
    assert path.is_file() and not path.is_symlink()
    with Library(path) as again:  # the new one is this app's library from now on
        assert again.note is None and again.count() == 1


def _not_a_library(kind, path, photos):
    if kind == "text":  # `--library-path notes/thesis.txt`, a mistyped argument
        path.write_text("Chapter 1\n\nThe results of my thesis.\n" * 50)
    elif kind == "photo":
        path.write_bytes(photos["rocket_jpg"].read_bytes())
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "foreign":
        with sqlite3.connect(path) as other:  # some other program's database at this name
            other.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
            other.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
        other.close()
    elif kind == "foreign in wal mode":
        other = sqlite3.connect(path)
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        other.commit()
        other.close()
    elif kind == "ours, header destroyed":  # nothing left says whose it was
        _filled(path, n=3)
        data = bytearray(path.read_bytes())
        data[:100] = np.random.default_rng(1).bytes(100)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["text", "photo", "garbage", "foreign", "foreign in wal mode", "ours, header destroyed"])
def test_a_file_that_is_not_this_apps_library_is_refused_and_left_untouched(tmp_path, photos, kind):
    folder = tmp_path / "notes"
    folder.mkdir()
    path = folder / "thesis.txt"
    _not_a_library(kind, path, photos)
    before = path.read_bytes()
    listing = sorted(os.listdir(folder))
    with Library(path) as lib:
        note = lib.take_note()
        assert note and str(path) in note and "not a resnext-gui results library" in note and "left untouched" in note
        assert "kept only until the app closes" in note and "set aside" not in note
        assert not lib.persistent and lib.take_note() is None
        p = photo(tmp_path, "a.jpg", b"a photo")
        lib.store(p, KEY, prediction(p))  # this run's answers, in memory
        assert lib.lookup(p, KEY) is not None
    assert path.read_bytes() == before and sorted(os.listdir(folder)) == listing  # not a byte, not a -wal beside it


def test_an_empty_file_becomes_the_library(tmp_path):
    path = tmp_path / "empty.sqlite3"
    path.touch()  # nothing in it to lose (and what a first run killed before its first commit leaves)
    with Library(path) as lib:
        assert lib.take_note() is None and lib.persistent
        p = photo(tmp_path, "a.jpg", b"a photo")
        lib.store(p, KEY, prediction(p))
    with Library(path) as lib:
        assert lib.count() == 1


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


def test_random_bytes_in_the_middle_are_found_by_lookups_and_said_once_with_the_new_name(tmp_path):
    path = _filled(tmp_path / "library.sqlite3")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = np.random.default_rng(0).bytes(8192)
    path.write_bytes(bytes(data))
    notes = []
    with Library(path) as lib:
        assert lib.take_note() is None  # the header and the schema are whole: the damage is not seen yet
        for i in range(30):
            lib.lookup(tmp_path / f"p{i}.jpg", KEY)
            notes.append(lib.take_note())
    said = [n for n in notes if n and "set aside" in n]  # (a row that reads back as garbage is a miss, said too)
    aside = [f for f in os.listdir(tmp_path) if f.startswith("library.sqlite3.damaged-")]
    assert len(said) == 1 and len(aside) == 1
    assert "it is damaged" in said[0] and f"set aside as {aside[0]}" in said[0] and "new one was started" in said[0]


def test_an_entry_whose_text_is_not_utf8_is_damage_set_aside_once_without_quoting_the_bytes(tmp_path):
    path = _filled(tmp_path / "library.sqlite3", n=3)
    with sqlite3.connect(path) as conn:  # what a flipped byte inside an entry's text looks like to the reader
        conn.execute("UPDATE photos SET record = CAST(X'7bff22fe' AS TEXT)")
    conn.close()
    with Library(path) as lib:
        assert lib.lookup(tmp_path / "p1.jpg", KEY) is None
        note = lib.take_note()
        assert note and "set aside" in note and "not UTF-8" in note and "\ufffd" not in note
        assert lib.lookup(tmp_path / "p2.jpg", KEY) is None and lib.take_note() is None
    assert len([f for f in os.listdir(tmp_path) if f.startswith("library.sqlite3.damaged-")]) == 1


def test_links_and_pipes_at_the_wal_and_shm_names_are_set_aside_named_and_never_written_through(tmp_path):
    path = _filled(tmp_path / "library.sqlite3", n=3)
    target = tmp_path / "someone's file"
    target.write_bytes(b"not to be written")
    os.symlink(target, tmp_path / "library.sqlite3-wal")
    os.symlink(tmp_path / "nowhere", tmp_path / "library.sqlite3-shm")
    os.mkfifo(tmp_path / "library.sqlite3-journal")
    with Library(path) as lib:
        note = lib.take_note()
        assert lib.persistent and lib.count() == 3  # the library goes on from its main file
        p = photo(tmp_path, "new.jpg", b"new photo")
        lib.store(p, KEY, prediction(p))
    for name, kind in (("library.sqlite3-wal", "a symbolic link"), ("library.sqlite3-shm", "a symbolic link"),
                       ("library.sqlite3-journal", "a named pipe")):
        assert f"{name} ({kind}) as {name}.damaged-" in note
    aside = {f for f in os.listdir(tmp_path) if ".damaged-" in f}
    assert len(aside) == 3 and all(a in note for a in aside)
    assert target.read_bytes() == b"not to be written" and not (tmp_path / "nowhere").exists()
    with Library(path) as again:
        assert again.take_note() is None and again.count() == 4


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
    later = L.SCHEMA_VERSION + 1

    def add_rating(conn):
        conn.execute("ALTER TABLE photos ADD COLUMN rating INTEGER")

    monkeypatch.setitem(L.MIGRATIONS, later, add_rating)
    monkeypatch.setattr(L, "SCHEMA_VERSION", later)
    with Library(path) as lib:
        assert lib.note is None and lib.count() == 3
        assert lib.lookup(tmp_path / "p1.jpg", KEY) is not None
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == later
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


# ---- feature vectors and hashes (schema 3) ----
def with_vector(pred, seed):
    rng = np.random.default_rng(seed)
    pred.features = rng.random(2048).astype(np.float16)
    pred.dhash = int(rng.integers(0, 2**63)) * 2 + 1 | (1 << 63)  # the top bit set: kept as a signed integer
    return pred


def test_vectors_round_trip_follow_moves_and_go_with_their_row(tmp_path):
    a = photo(tmp_path, "a.jpg", b"first photo" * 40)
    b = photo(tmp_path, "b.jpg", b"second photo" * 40)
    with Library(tmp_path / "lib.sqlite3") as lib:
        pa, pb = with_vector(prediction(a), 1), with_vector(prediction(b), 2)
        lib.store(a, KEY, pa)
        lib.store(b, KEY, pb)
        entry = lib.lookup(a, KEY)
        assert entry.features.dtype == np.float16 and np.array_equal(entry.features, pa.features)
        assert entry.dhash == pa.dhash and entry.dhash >= 1 << 63
        moved = tmp_path / "moved.jpg"
        os.rename(a, moved)
        entry = lib.lookup(moved, KEY)  # a moved photo's vector follows it
        assert np.array_equal(entry.features, pa.features) and entry.dhash == pa.dhash
        again = prediction(b)  # computed again without a vector (another layer's maps, say): none stays behind
        lib.store(b, KEY, again)
        assert lib.lookup(b, KEY).features is None
        lib.store(b, KEY, with_vector(prediction(b), 3))
        lib.forget([moved])
        stored = lib.stored_vectors(KEY)
        assert stored.paths == [str(b)] and stored.missing == []
        conn = lib._conn
        assert conn.execute("SELECT count(*) FROM vectors").fetchone()[0] == 1  # none left of the rows gone
        lib.clear()
        assert conn.execute("SELECT count(*) FROM vectors").fetchone()[0] == 0


def test_stored_vectors_reads_one_model_as_arrays(tmp_path):
    paths = [photo(tmp_path, f"{i}.jpg", bytes([i + 1]) * 50) for i in range(5)]
    preds = []
    with Library(tmp_path / "lib.sqlite3") as lib:
        for i, p in enumerate(paths):
            pred = prediction(p)
            pred.image_size = (100 + i, 50)
            if i != 3:  # photo 3: an answer from before vectors were kept
                with_vector(pred, i)
            preds.append(pred)
            lib.store(p, KEY, pred)
        lib.store(paths[0], OTHER_KEY, with_vector(prediction(paths[0]), 9))
        stored = lib.stored_vectors(KEY)
        assert lib.stored_vectors(model_key("ef" * 32, Preprocessing(232, 224))).paths == []
    keep = [0, 1, 2, 4]
    assert stored.paths == [str(paths[i]) for i in keep] and stored.missing == [str(paths[3])]
    assert stored.features.dtype == np.float16 and stored.features.shape == (4, 2048)
    assert np.array_equal(stored.features, np.stack([preds[i].features for i in keep]))
    assert stored.hashes.dtype == np.uint64 and stored.hashes.tolist() == [preds[i].dhash for i in keep]
    assert stored.pixels.tolist() == [(100 + i) * 50 for i in keep]
    assert stored.sizes.tolist() == [p.stat().st_size for p in (paths[i] for i in keep)]
    assert stored.mtimes_ns.tolist() == [p.stat().st_mtime_ns for p in (paths[i] for i in keep)]


V1_LIBRARY = REPO / "tests" / "data" / "library-v1-gallery.sqlite3"
V1_PHOTOS = REPO / "tests" / "data" / "library-v1-gallery"
V1_PATHS = [f"/tmp/resnext-gui-v1-gallery/Pictures/IMG_000{i}.bmp" for i in (1, 2, 3)]


def test_a_version_1_library_migrates_with_its_entries_kept(tmp_path):
    """tests/data/library-v1-gallery.sqlite3 was written by the version-1 Library: three answers (the photos
    beside it, stored from /tmp/resnext-gui-v1-gallery/Pictures/, a folder gone since) and a gallery of them."""
    path = tmp_path / "library.sqlite3"
    path.write_bytes(V1_LIBRARY.read_bytes())
    conn = sqlite3.connect(path)
    try:  # a real version-1 file: no vectors
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "vectors" not in [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()
    for bmp in V1_PHOTOS.iterdir():
        (tmp_path / bmp.name).write_bytes(bmp.read_bytes())
    with Library(path) as lib:
        assert lib.note is None and lib.persistent
        assert lib.count() == 3 and lib.gallery() == V1_PATHS
        assert [e.path for e in lib.search("espresso")] == [V1_PATHS[1]]
        assert lib.stored_vectors(KEY).missing == V1_PATHS  # answered before: no vector yet
        entry = lib.lookup(tmp_path / "IMG_0001.bmp", KEY)  # found by its bytes (the old folder is gone)
        assert entry is not None and [t["label"] for t in entry.top] == ["tabby", "tiger cat"]
        assert entry.maps.shape == (2, 7, 7) and entry.thumbnail[:2] == b"\xff\xd8" and entry.features is None
        computed = with_vector(prediction(tmp_path / "IMG_0001.bmp"), 7)
        lib.store(tmp_path / "IMG_0001.bmp", KEY, computed)  # computed again: now with its vector
        assert np.array_equal(lib.lookup(tmp_path / "IMG_0001.bmp", KEY).features, computed.features)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == L.SCHEMA_VERSION
    finally:
        conn.close()
