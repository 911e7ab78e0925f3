"""Photos and maps as the window takes them: QImage from decoded pixels, view copies, thumbnails, colour-map indices, PNG bytes and files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QSize, Qt
from PySide6.QtGui import QImage, QImageReader, QImageWriter

from .queue import JobFailed

DISPLAY_MAX_SIDE = 1280  # the photo kept for the view; the full decode never leaves the worker
THUMB_SIDE = 96  # logical pixels; drawn at the screen's pixel ratio
MAP_SIDE = 224  # heatmaps are sent upsampled to the model's input size, as 8-bit colour-map indices

PhotoSource = str | bytes | QImage  # a path, encoded image bytes, or image data without a file


def name_of(source: PhotoSource) -> str:
    if isinstance(source, QImage):
        return "image data"
    from ..core.preprocess import source_name

    return source_name(source)


def own(source: PhotoSource) -> PhotoSource:
    """A QImage crossing threads gets its own pixels; a path or bytes are immutable already."""
    return source.copy() if isinstance(source, QImage) else source


def decodable(source: PhotoSource) -> str | bytes:
    """What the core's decoder takes: a path or encoded bytes (image data becomes PNG bytes)."""
    return qimage_to_png_bytes(source) if isinstance(source, QImage) else source


def qimage_from_rgb(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # own the pixels


def display_copy(pil_image: Any) -> QImage:
    """The photo at view size (at most DISPLAY_MAX_SIDE a side), from a decoded PIL image."""
    from PIL import Image

    im = pil_image
    if max(im.size) > DISPLAY_MAX_SIDE:
        im = im.copy()
        im.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE), Image.Resampling.BILINEAR)
    return qimage_from_rgb(np.asarray(im))


def thumbnail(image: QImage, pixel_ratio: float) -> QImage:
    """The gallery's thumbnail of ``image``: THUMB_SIDE logical pixels a side at most, at the screen's ratio."""
    side = round(THUMB_SIDE * pixel_ratio)
    thumb = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    thumb.setDevicePixelRatio(pixel_ratio)
    return thumb


def thumbnail_from_bytes(data: bytes | None, pixel_ratio: float) -> QImage | None:
    """A stored thumbnail (JPEG bytes) as the gallery's; None when there is none or it does not decode.

    The JPEG decoder itself reduces it on the way (DCT scaling, then a smooth scale): a reopened gallery of
    hundreds of photos decodes them in a fraction of the time a full decode and a rescale take."""
    if not data:
        return None
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    side = round(THUMB_SIDE * pixel_ratio)
    size = reader.size()
    wanted = size.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio) if size.isValid() else QSize()
    if wanted.isValid() and not wanted.isEmpty() and (size.width() > side or size.height() > side):
        reader.setScaledSize(wanted)
    image = reader.read()
    if image.isNull():
        return None
    if wanted.isValid() and image.size() == wanted:
        image.setDevicePixelRatio(pixel_ratio)
        return image
    return thumbnail(image, pixel_ratio)


def map_indices(cams: np.ndarray) -> np.ndarray:
    """Maps in [0, 1] -> (k, MAP_SIDE, MAP_SIDE) colour-map indices, upsampled as the CLI's overlays are."""
    from ..core.cam import upsample

    maps = upsample(np.asarray(cams, dtype=np.float32), (MAP_SIDE, MAP_SIDE))  # all k at once
    maps *= np.float32(255)
    np.rint(maps, out=maps)
    np.clip(maps, 0, 255, out=maps)
    out: np.ndarray = maps.astype(np.uint8)
    return out


def qimage_to_png_bytes(image: QImage) -> bytes:
    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; PySide takes only str here
    return bytes(buf.data().data())


def write_png(image: QImage, path: str, text: dict[str, str]) -> None:
    """Encode ``image`` as PNG and write it as the export files are (core.files.atomic_file: a temporary file
    renamed into place, an existing file's mode kept); a folder, a named pipe or a device at ``path`` is refused.
    JobFailed with the reason (a full disk, a read-only folder...); an earlier file at ``path`` is then untouched."""
    from ..core.files import NotRegularFile, atomic_file, refuse_special

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buf, b"png")
    for key, value in text.items():
        writer.setText(key, value)
    if not writer.write(image):
        raise JobFailed(f"Could not save {path}: the image could not be encoded ({writer.errorString()})")
    data = bytes(buf.data().data())
    try:
        refuse_special(path)
        with atomic_file(Path(path), shared=True, keep_mode=True) as fh:
            fh.write(data)
    except NotRegularFile as exc:
        raise JobFailed(f"Could not save {path}: {exc}; choose another file name") from exc
    except OSError as exc:
        raise JobFailed(f"Could not save {path}: {exc.strerror or exc}") from exc
