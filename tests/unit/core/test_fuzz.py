"""Fuzzing untrusted input: any bytes give an image or a clean error; any name or label gives valid, safe output."""

import csv
import io
import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from resnext_gui.core.errors import ImageError
from resnext_gui.core.prediction import Prediction, TopClass
from resnext_gui.core.preprocess import load_image
from resnext_gui.core.records import FORMULA_START, csv_header, json_line, valid_text, write_records


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    out = []
    for fmt, kw in [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {}), ("PNG", {"bits": 4})]:
        buf = io.BytesIO()
        (im.convert("P") if fmt == "GIF" else im).save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


def _check(data: bytes) -> None:
    try:
        decoded = load_image(data, min_side=64)
    except ImageError as exc:
        assert str(exc)  # a message for the user, nothing else escapes
        return
    assert decoded.image.mode == "RGB" and decoded.image.width >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_images(seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check(bytes(data))


@pytest.mark.parametrize("i", range(len(SEEDS)))
def test_seeds_are_valid_images(i):
    assert load_image(SEEDS[i]).image.size == (32, 24)


# ---- untrusted text through the output records (what `classify` prints and Export writes) ----

_name_bytes = st.binary(min_size=1, max_size=120).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_"))
_markup = st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(FORMULA_START + ("'", " ", "<", "\u2028", "\u0085")), st.text(max_size=40)).map("".join),
    _name_bytes.map(os.fsdecode),  # may hold lone surrogates, as undecodable file names do
)


def _unneutralised(cell: str) -> str:
    """The text a neutralised CSV cell stands for: one quote is added where quotes lead to a formula character."""
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_START) else cell


def _prediction(name: bytes, labels: list[str], ok: bool) -> Prediction:
    path = os.fsdecode(b"/photos/" + name)
    if not ok:
        return Prediction(path=path, ok=False, error=f"{path} is not an image this app can read")
    top = [TopClass(i + 1, i, label, 1.0 / (i + 2)) for i, label in enumerate(labels)]
    return Prediction(path=path, ok=True, top=top, note=labels[0] if labels else None)


@settings(max_examples=200, deadline=None)
@given(name=_name_bytes, labels=st.lists(_markup, min_size=1, max_size=3), ok=st.booleans())
def test_any_file_name_gives_one_valid_json_line(name, labels, ok):
    record = _prediction(name, labels, ok).to_record()
    line = json_line(record)
    raw = (line + "\n").encode("utf-8")  # strict: the line is valid UTF-8
    assert raw.count(b"\n") == 1 and not any(c in line for c in "\u2028\u2029\u0085\r")
    got = json.loads(line)
    full = b"/photos/" + name
    try:
        full.decode("utf-8")
        assert got["path"] == os.fsdecode(full) and "path_bytes" not in got
    except UnicodeDecodeError:
        assert bytes.fromhex(got["path_bytes"]) == full and "\ufffd" in got["path"]
    if ok:
        assert [t["label"] for t in got["top"]] == [valid_text(x) for x in labels]


@settings(max_examples=100, deadline=None)
@given(preds=st.lists(st.tuples(_name_bytes, st.lists(_markup, min_size=1, max_size=3), st.booleans()),
                      min_size=1, max_size=4))
def test_any_markup_or_label_exports_as_valid_neutralised_csv_and_json(preds):
    records = [_prediction(n, labels, ok).to_record() for n, labels, ok in preds]
    with tempfile.TemporaryDirectory() as tmp:
        write_records(os.path.join(tmp, "out.csv"), records, "csv")
        write_records(os.path.join(tmp, "out.json"), records, "json")
        with open(os.path.join(tmp, "out.csv"), encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        with open(os.path.join(tmp, "out.json"), encoding="utf-8") as fh:
            text = fh.read()
    k = max(len(r.get("top", [])) for r in records)
    assert rows[0] == csv_header(k) and len(rows) == len(records) + 1
    header = rows[0]
    for row, (name, labels, ok) in zip(rows[1:], preds):
        assert not any(cell.startswith(FORMULA_START) for cell in row)  # nothing a spreadsheet would run
        cell = dict(zip(header, row))
        assert len(row) == len(header)
        assert cell["path"].removeprefix("'") == valid_text(os.fsdecode(b"/photos/" + name))
        assert cell["ok"] == str(ok)
        if ok:  # the labels the prediction was made with, ranked as made, each in its own column
            for r, label in enumerate(labels, 1):
                assert _unneutralised(cell[f"label{r}"]) == valid_text(label)
                assert cell[f"index{r}"] == str(r - 1) and float(cell[f"prob{r}"]) == pytest.approx(1 / (r + 1), abs=1e-6)
            assert all(cell[f"label{r}"] == "" for r in range(len(labels) + 1, k + 1))
        else:
            assert "is not an image" in cell["error"] and all(cell[f"label{r}"] == "" for r in range(1, k + 1))
    assert "\u2028" not in text

    def no_constants(name):  # NaN / Infinity as JSON numbers, not inside a label
        raise AssertionError(f"non-finite number {name} in the export")

    assert [r["path"] for r in json.loads(text, parse_constant=no_constants)] == [valid_text(r["path"]) for r in records]
