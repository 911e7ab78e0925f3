"""The answer for one photo: its top classes, their maps and where the model looked, as a plain object (and its record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ImageError
from .kinds import DEFAULT_METHOD, Layer, Method


@dataclass
class TopClass:
    rank: int
    index: int
    label: str
    prob: float


@dataclass
class Prediction:
    """The answer for one photo: a result, or ``ok=False`` with a specific error message."""

    path: str
    ok: bool
    error: str | None = None
    top: list[TopClass] = field(default_factory=list)
    cams: np.ndarray | None = None  # (k, h, w) float32 in [0, 1], one map per entry of ``top``
    layer: Layer = "layer4"
    method: Method = DEFAULT_METHOD  # the CAM method of ``cams``
    crop: tuple[float, float, float, float] | None = None  # (left, top, right, bottom), full-size photo pixels
    image_size: tuple[int, int] | None = None  # (width, height) of the oriented photo
    device: str = "cpu"
    ms: float = 0.0  # this photo's share of the work: decode + inference + CAMs
    decode_ms: float = 0.0
    infer_ms: float = 0.0
    note: str | None = None  # something worth telling the user (e.g. ran on CPU after a GPU error)
    image: object = None  # the decoded PIL image (RGB, oriented), when asked for with keep_images
    features: np.ndarray | None = None  # (2048,) float16: the last stage's pooled activations (core.similarity)
    dhash: int | None = None  # the photo's 64-bit difference hash (core.similarity.dhash)

    def to_record(self) -> dict[str, Any]:
        """The fields of the ``classify`` output (JSON lines / CSV)."""
        if not self.ok:
            return {"path": self.path, "ok": False, "error": self.error}
        record: dict[str, Any] = {
            "path": self.path,
            "ok": True,
            "top": [{"rank": t.rank, "index": t.index, "label": t.label, "prob": round(t.prob, 6)} for t in self.top],
            "device": self.device,
            "ms": round(self.ms, 1),
        }
        if self.method != DEFAULT_METHOD:  # records of the default method stay as they always were
            record["cam_method"] = self.method
        if self.note:
            record["note"] = self.note
        return record


def failure(name: str, exc: BaseException, doing: str = "prepared") -> Prediction:
    """The ``ok=False`` answer for a photo whose own processing raised ``exc``: any exception, one message."""
    if isinstance(exc, ImageError):
        message = str(exc)
    elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        message = f"{name} could not be {doing}: not enough memory"
    else:
        detail = (str(exc).splitlines() or [""])[0][:300]
        message = f"{name} could not be {doing} ({type(exc).__name__}{': ' + detail if detail else ''})"
    return Prediction(path=name, ok=False, error=message)
