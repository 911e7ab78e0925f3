"""The output format shared by `classify` and the window's export: one record per photo, as JSON or CSV."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable


def csv_header(k: int) -> list[str]:
    cols = ["path", "ok", "error", "device", "ms"]
    for r in range(1, k + 1):
        cols += [f"label{r}", f"index{r}", f"prob{r}"]
    return cols + ["cam_png", "cam_npy", "note"]


def csv_row(record: dict, k: int) -> list:
    row = [record["path"], record["ok"], record.get("error", ""), record.get("device", ""), record.get("ms", "")]
    top = record.get("top", [])
    for r in range(k):
        row += [top[r]["label"], top[r]["index"], top[r]["prob"]] if r < len(top) else ["", "", ""]
    return row + [record.get("cam_png", ""), record.get("cam_npy", ""), record.get("note", "")]


def topk_of(records: Iterable[dict], default: int = 5) -> int:
    return max((len(r.get("top", [])) for r in records), default=default)


def write_records(path: str | os.PathLike, records: list[dict], fmt: str) -> None:
    """Write ``records`` as ``fmt`` ("json" or "csv") atomically: a failure leaves any earlier file as it was."""
    if fmt not in ("json", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            if fmt == "json":
                json.dump(records, fh, ensure_ascii=False, indent=1)
            else:
                k = topk_of(records)
                writer = csv.writer(fh)
                writer.writerow(csv_header(k))
                writer.writerows(csv_row(r, k) for r in records)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
