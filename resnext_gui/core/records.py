"""The output format shared by `classify` and the window's export: one record per photo, as JSON or CSV.

Records carry untrusted text — file names, labels from a checkpoint, error messages that quote both — so
everything written goes through ``clean_record`` and the writers here:

- a CSV cell that starts with ``= + - @``, a tab or a carriage return gets a leading ``'``, so a spreadsheet
  shows it as text instead of running it as a formula (OWASP's advice for CSV injection);
- text that is not valid Unicode (a file name whose bytes are not UTF-8) is written with U+FFFD in place of
  the bad bytes, and the record gains ``path_bytes``: the path's exact bytes, in hex;
- JSON escapes U+2028, U+2029 and U+0085, which some line-oriented readers take for line breaks;
- numbers that are not finite (NaN, infinity) are written as null / an empty cell, never as ``NaN``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from .files import atomic_file

Record = dict[str, Any]  # one photo's answer, as `classify` prints it
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def _raw_bytes(text: str) -> bytes:
    """The bytes a str stands for: file names keep undecodable bytes as lone surrogates (surrogateescape)."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        return text.encode("utf-8", "surrogatepass")


def is_valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: what undecodable bytes stood for becomes U+FFFD."""
    return text if is_valid_text(text) else _raw_bytes(text).decode("utf-8", "replace")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {valid_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def clean_record(record: Record) -> Record:
    """A copy of ``record`` that is safe to write: valid Unicode, finite numbers, and ``path_bytes`` when
    the path is not valid UTF-8 (the exact bytes of the name, in hex, so the file can still be found)."""
    out: Record = {}
    for key, value in record.items():
        out[key] = _clean(value)
        if key == "path" and isinstance(value, str) and not is_valid_text(value):
            out["path_bytes"] = _raw_bytes(value).hex()
    return out


def json_line(record: Record) -> str:
    """One record as one line of JSON (no newline at the end), valid UTF-8 whatever the record holds."""
    return _escape_line_breaks(json.dumps(clean_record(record), ensure_ascii=False, allow_nan=False))


def _escape_line_breaks(text: str) -> str:
    # In JSON these characters can only occur inside strings, where their escapes mean the same.
    for char, escaped in _LINE_BREAKS.items():
        text = text.replace(char, escaped)
    return text


def neutralise(cell: Any) -> Any:
    """A CSV cell a spreadsheet will show as text: a leading formula character gets a ``'`` before it. So that the
    quote added is never mistaken for one of the text's, a formula character behind quotes of the text's own
    ("'=") gets one more too: a reader removes one quote where quotes lead to a formula character."""
    if isinstance(cell, str) and cell.lstrip("'").startswith(FORMULA_START):
        return "'" + cell
    return cell


# The faithfulness figures of a record's top-1 map, as CSV columns ("faithfulness.<name>").
FAITHFULNESS_FIELDS = ("method", "layer", "deletion_auc", "insertion_auc", "random_deletion_auc",
                       "random_insertion_auc", "prob", "prob_hidden", "random_prob_hidden")


def extra_columns(cam_method: bool, faithfulness: bool) -> tuple[str, ...]:
    """The CSV columns beyond the usual ones: the CAM method (when a map of another method than Grad-CAM is
    recorded) and the faithfulness figures. One rule for `classify --format csv` and the window's Export."""
    extra: tuple[str, ...] = ("cam_method",) if cam_method else ()
    if faithfulness:
        extra += tuple(f"faithfulness.{name}" for name in FAITHFULNESS_FIELDS)
    return extra


def extra_columns_of(records: Iterable[Record]) -> tuple[str, ...]:
    """``extra_columns`` for records already made: the columns that some record has a value for."""
    records = list(records)
    return extra_columns(any("cam_method" in r for r in records), any("faithfulness" in r for r in records))


def csv_header(k: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The CSV columns for ``k`` classes; ``extra`` columns at the end name further fields, a dotted name one
    inside a nested record ("faithfulness.deletion_auc")."""
    cols = ["path", "ok", "error", "device", "ms"]
    for r in range(1, k + 1):
        cols += [f"label{r}", f"index{r}", f"prob{r}"]
    return cols + ["cam_png", "cam_npy", "note", "path_bytes", *extra]


def csv_row(record: Record, k: int, extra: tuple[str, ...] = ()) -> list[Any]:
    record = clean_record(record)

    def get(key: str) -> Any:
        value: Any = record
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return "" if value is None or isinstance(value, (dict, list)) else value

    row = [get("path"), record["ok"], get("error"), get("device"), get("ms")]
    top = record.get("top") or []
    for r in range(k):
        if r < len(top):
            row += ["" if top[r].get(f) is None else top[r][f] for f in ("label", "index", "prob")]
        else:
            row += ["", "", ""]
    row += [get("cam_png"), get("cam_npy"), get("note"), get("path_bytes")]
    row += [get(key) for key in extra]
    return [neutralise(cell) for cell in row]


def topk_of(records: Iterable[Record], default: int = 5) -> int:
    return max((len(r.get("top", [])) for r in records), default=default)


def csv_text(row: list[Any]) -> str:
    """One CSV row as text, with its line ending (as csv.writer writes it)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue()


class Writable(Protocol):
    """Where records go: a text file, standard output, anything with ``write(str)``."""

    def write(self, text: str, /) -> object: ...


class RecordWriter:
    """The one writer of records: JSON lines or CSV rows to a text stream, one record at a time (``classify``
    streams through it; Export writes a whole file through ``write_records``). ``k`` classes and the ``extra``
    columns (``extra_columns``) are fixed when the writer is made; ``begin`` writes the CSV header, once."""

    FORMATS = ("jsonl", "csv")

    def __init__(self, stream: Writable, fmt: str, k: int = 5, extra: tuple[str, ...] = ()) -> None:
        if fmt not in self.FORMATS:
            raise ValueError(f"unknown record format {fmt!r}")
        self.stream, self.fmt, self.k, self.extra = stream, fmt, k, extra
        self._begun = False

    def begin(self) -> None:
        if not self._begun:
            self._begun = True
            if self.fmt == "csv":
                self.stream.write(csv_text(csv_header(self.k, self.extra)))

    def write(self, record: Record) -> None:
        self.begin()
        if self.fmt == "jsonl":
            self.stream.write(json_line(record) + "\n")
        else:
            self.stream.write(csv_text(csv_row(record, self.k, self.extra)))


def write_records(path: str | os.PathLike[str], records: list[Record], fmt: str) -> None:
    """Write ``records`` as ``fmt`` ("json": one JSON array; "csv": the columns ``classify --format csv``
    writes for such records) atomically: a failure leaves any earlier file as it was."""
    if fmt not in ("json", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    with atomic_file(Path(path), text=True, shared=True) as fh:  # as any program's file: the umask decides
        if fmt == "json":
            text = json.dumps([clean_record(r) for r in records], ensure_ascii=False, indent=1, allow_nan=False)
            fh.write(_escape_line_breaks(text))
        else:
            writer = RecordWriter(fh, "csv", topk_of(records), extra_columns_of(records))
            writer.begin()
            for record in records:
                writer.write(record)
