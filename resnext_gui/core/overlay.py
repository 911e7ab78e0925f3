"""A prediction drawn for people: the photo with a class's map over the region the model saw, and the PNG that carries it."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from . import cam as cam_mod
from .cam import METHOD_NAMES
from .prediction import Prediction


def cam_overlay(pred: Prediction, rank: int = 1, cmap: str = "jet", opacity: float = 0.5, heatmap_only: bool = False) -> np.ndarray:
    """The photo kept in ``pred.image`` with the map of class ``rank`` drawn on the region the model saw."""
    if pred.image is None or pred.cams is None or pred.crop is None or pred.image_size is None:
        raise ValueError("this prediction has no image or map to draw (use keep_image=True)")
    photo = np.asarray(pred.image)
    sx = photo.shape[1] / pred.image_size[0]
    sy = photo.shape[0] / pred.image_size[1]
    left, top, right, bottom = pred.crop
    rect = (left * sx, top * sy, right * sx, bottom * sy)
    return cam_mod.overlay(photo, pred.cams[rank - 1], rect, cmap, opacity, heatmap_only)


def overlay_text(pred: Prediction, rank: int = 1) -> dict[str, str]:
    """The text fields of an overlay PNG of ``pred``'s class ``rank``: what it shows and how it was made (the
    photo by its file name only, never its folder)."""
    from .records import valid_text

    text = {"Source": valid_text(Path(pred.path).name), "Software": "resnext-gui",
            "Method": METHOD_NAMES.get(pred.method, pred.method), "Layer": pred.layer}
    if pred.ok and 0 < rank <= len(pred.top):
        top = pred.top[rank - 1]
        text.update({"Class": valid_text(top.label), "Class index": str(top.index), "Rank": str(rank),
                     "Probability": f"{top.prob:.4f}"})
    return text


def save_png(array: np.ndarray, path: Path | IO[bytes], text: dict[str, str] | None = None) -> None:
    """An (H, W, 3) uint8 picture as PNG, to a path or an open binary file, with ``text`` as its text chunks
    (iTXt where a value is not Latin-1)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = None
    if text:
        info = PngInfo()
        for key, value in text.items():
            try:
                value.encode("latin-1")
                info.add_text(key, value)
            except UnicodeEncodeError:
                info.add_itxt(key, value)
    Image.fromarray(array).save(path, format="PNG", pnginfo=info)
