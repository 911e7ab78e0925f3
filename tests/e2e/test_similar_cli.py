"""The `similar` and `duplicates` commands keep their contract: output fields and order, the keeper, the library,
exit statuses and bad input as `classify` has them."""

import csv
import io
import json
import os
import shutil

import pytest
from PIL import Image

from tests.support.helpers import run_cli


def lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def album(tmp_path_factory, photos):
    """Four photos, and three copies of the coffee: the same file again, half size recompressed, turned 2 degrees."""
    root = tmp_path_factory.mktemp("album")
    for name in ("chelsea", "astronaut", "coffee"):
        shutil.copy(photos[name], root / f"{name}.png")
    shutil.copy(photos["rocket_jpg"], root / "rocket.jpg")
    shutil.copy(photos["coffee"], root / "coffee-copy.png")
    with Image.open(photos["coffee"]) as im:
        im = im.convert("RGB")
        im.resize((300, 200), Image.Resampling.LANCZOS).save(root / "coffee-small.jpg", quality=60)
        im.rotate(2, resample=Image.Resampling.BICUBIC).save(root / "coffee-turned.jpg", quality=90)
    os.utime(root / "coffee.png", ns=(0, 3 * 10**18))  # the newest of the full-size coffees: the keeper
    return root


COFFEES = {"coffee.png", "coffee-copy.png", "coffee-small.jpg", "coffee-turned.jpg"}


@pytest.fixture
def forward_passes(monkeypatch):
    """Photos the network answered in this process (Classifier._answers: every batch's outputs)."""
    from resnext_gui.core.classifier import Classifier

    count = {"photos": 0}
    real = Classifier._answers

    def counting(self, items, *args, **kwargs):
        count["photos"] += len(items)
        return real(self, items, *args, **kwargs)

    monkeypatch.setattr(Classifier, "_answers", counting)
    return count


def test_similar_lists_the_most_similar_first(checkpoint, album):
    r = run_cli("similar", "--weights", checkpoint, "--top", "4", album / "coffee.png", album)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert len(out) == 4 and all(set(o) == {"path", "similarity"} for o in out)
    assert {os.path.basename(o["path"]) for o in out[:3]} == COFFEES - {"coffee.png"}  # itself never listed
    assert out[0] == {"path": str(album / "coffee-copy.png"), "similarity": 1.0}
    sims = [o["similarity"] for o in out]
    assert sims == sorted(sims, reverse=True) and out[3]["similarity"] < 0.6
    r = run_cli("similar", "--weights", checkpoint, "--format", "csv", album / "coffee.png", album / "coffee-small.jpg",
                album / "rocket.jpg", album / "coffee.png")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [os.path.basename(row["path"]) for row in rows] == ["coffee-small.jpg", "rocket.jpg"]
    assert "fewer than 3 photos" not in r.stderr  # three photos compared


def test_duplicates_groups_with_the_keeper_first(checkpoint, album):
    r = run_cli("duplicates", "--weights", checkpoint, album)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert len(out) == 1 and set(out[0]) == {"paths", "similarity", "keep"}  # photos with no copy: not listed
    group = out[0]
    assert {os.path.basename(p) for p in group["paths"]} == COFFEES
    assert group["keep"] == group["paths"][0] == str(album / "coffee.png")  # most pixels, then the newest
    assert group["paths"][1] == str(album / "coffee-copy.png")  # then the others, most similar to it first
    assert 0.6 <= group["similarity"] < 1.0  # the weakest link: the turned copy
    assert "7 photos compared: 1 groups of near-duplicates (4 photos)" in r.stderr

    r = run_cli("duplicates", "--weights", checkpoint, "--threshold", "0.999", "--format", "csv", album)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["group", "similarity", "keep", "path", "path_bytes"]
    exact = {os.path.basename(row["path"]) for row in rows}
    assert {"coffee.png", "coffee-copy.png"} <= exact and "coffee-turned.jpg" not in exact
    assert {row["group"] for row in rows} == {"1"} and float(rows[0]["similarity"]) >= 0.999
    assert [row["keep"] for row in rows].count("True") == 1


def test_bad_input_is_reported_as_classify_reports_it(checkpoint, album, tmp_path):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    missing = tmp_path / "gone.png"
    told = run_cli("classify", "--weights", checkpoint, junk, missing)
    errors = [o["error"] for o in lines(told.stdout)]
    assert told.returncode == 1 and len(errors) == 2
    for command in (["duplicates"], ["similar", album / "coffee.png"]):
        r = run_cli(command[0], "--weights", checkpoint, *command[1:], album, junk, missing)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert all(f"resnext-gui: {e}" in r.stderr for e in errors)  # the same words, on stderr
        assert r.stdout  # the others compared all the same
    r = run_cli("similar", "--weights", checkpoint, missing, album)
    assert r.returncode == 1 and r.stdout == "" and errors[1] in r.stderr


def test_no_weights_exit_2_as_classify(album):
    for command in (["duplicates"], ["similar", album / "coffee.png"]):
        r = run_cli(*command, album)
        assert r.returncode == 2 and r.stdout == ""
        assert "resnext-gui weights fetch" in r.stderr and "--weights FILE" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["duplicates", "--threshold", "0", "ALBUM"], "must be above 0 and at most 1"),
    (["duplicates", "--threshold", "1.5", "ALBUM"], "must be above 0 and at most 1"),
    (["duplicates", "--threshold", "nan", "ALBUM"], "must be above 0 and at most 1"),
    (["duplicates"], "give photos or folders, or --library"),
    (["duplicates", "--library-path", ".", "ALBUM"], "is a folder"),
    (["similar", "ALBUM", "ALBUM"], "is a folder; give one photo"),
    (["similar", "ALBUM/coffee.png"], "nothing to compare with"),
    (["similar", "--top", "0", "ALBUM/coffee.png", "ALBUM"], "must be at least 1"),
])
def test_usage_errors_exit_2_before_the_model_loads(checkpoint, album, args, message):
    args = [a.replace("ALBUM", str(album)) for a in args]
    r = run_cli(args[0], "--weights", checkpoint, *args[1:])
    assert r.returncode == 2 and message in r.stderr and "loading the model" not in r.stderr


def test_nothing_found_exits_1(checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli("duplicates", "--weights", checkpoint, tmp_path / "empty")
    assert r.returncode == 1 and "no image files were found" in r.stderr and r.stdout == ""


def test_library_keeps_vectors_and_answers_for_the_whole_library(checkpoint, album, tmp_path, forward_passes):
    lib = tmp_path / "library.sqlite3"
    r = run_cli("duplicates", "--weights", checkpoint, "--library-path", lib, album)
    assert r.returncode == 0, r.stderr
    assert forward_passes["photos"] == 7 and "0 from the results library, 7 computed" in r.stderr
    forward_passes["photos"] = 0
    again = run_cli("duplicates", "--weights", checkpoint, "--library-path", lib, album)
    assert again.returncode == 0 and again.stdout == r.stdout
    assert forward_passes["photos"] == 0 and "7 from the results library, 0 computed" in again.stderr
    whole = run_cli("duplicates", "--weights", checkpoint, "--library-path", lib)  # no PATH: the library's photos
    assert whole.returncode == 0 and whole.stdout == r.stdout and forward_passes["photos"] == 0

    outside = tmp_path / "new.jpg"  # a photo the library has not seen, against every photo it holds
    shutil.copy(album / "coffee-turned.jpg", outside)
    r = run_cli("similar", "--weights", checkpoint, "--library-path", lib, "--top", "3", outside)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert out[0]["path"] == str(album / "coffee-turned.jpg") and out[0]["similarity"] == 1.0
    assert {os.path.basename(o["path"]) for o in out} <= COFFEES
    assert forward_passes["photos"] == 0  # the same bytes as a photo it holds: answered from it too
