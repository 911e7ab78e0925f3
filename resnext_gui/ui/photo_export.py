"""What leaves the window for photos: the top-5 as text, the overlay as an image (clipboard, drag), a saved PNG's name and text."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage

from ..core.cam import METHOD_NAMES
from ..core.kinds import Layer, Method
from .gallery import Photo

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def stem_of(photo: Photo) -> str:
    """The photo's file name without its extension; image data without a file is named after its gallery name."""
    name = photo.name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return Path(name).stem if isinstance(photo.source, str) else name


def overlay_name(photo: Photo, label: str, layer: Layer, method: Method = "gradcam") -> str:
    """``coffee.espresso.gradcam.layer4.png``: the photo, the class shown, the CAM method and layer, safe as a file name."""
    parts = [_UNSAFE.sub("_", part).strip(" .") or "photo" for part in (stem_of(photo), label)]
    return f"{parts[0]}.{parts[1]}.{method}.{layer}.png"


def overlay_metadata(photo: Photo, rank: int, layer: Layer, method: Method = "gradcam") -> dict[str, str]:
    res = photo.result
    top = res.top[rank - 1] if res is not None and res.ok and 0 < rank <= len(res.top) else None
    meta = {"Source": photo.name, "Software": "resnext-gui", "Layer": layer, "Method": METHOD_NAMES.get(method, method)}
    if top is not None:
        meta.update({"Class": top.label, "Class index": str(top.index), "Rank": str(rank), "Probability": f"{top.prob:.4f}"})
    return meta


def top5_text(photo: Photo) -> str:
    """The photo's answer as plain text, one class a line (what Ctrl+C copies)."""
    res = photo.result
    if res is None:
        return f"{photo.name}: {photo.status.text}"
    if not res.ok:
        return f"{photo.name}: not classified: {res.error}"
    lines = [photo.name] + [f"{t.rank}. {t.label} {t.prob:.1%}" for t in res.top]
    return "\n".join(lines)


def photo_mime(photo: Photo, overlay: QImage | None) -> QMimeData:
    """Top-5 as text and the overlay as an image, for the clipboard or a drag into another program."""
    mime = QMimeData()
    mime.setText(top5_text(photo))
    if overlay is not None:
        mime.setImageData(overlay)
    return mime


def photos_mime(photos: list[Photo]) -> QMimeData:
    """Several photos' top 5 as text, one block each (Copy on a selection)."""
    mime = QMimeData()
    mime.setText("\n\n".join(top5_text(p) for p in photos))
    return mime
