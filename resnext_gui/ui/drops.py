"""What a drop or a paste brings: local files and folders, image data, or web links the offline app refuses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QImage

IMAGE_MIME = ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif", "image/tiff")
WEB_SCHEMES = ("http", "https", "ftp")


@dataclass
class Dropped:
    paths: list[str] = field(default_factory=list)  # files and folders, listed off the GUI thread later
    data: list[tuple[bytes | QImage, str]] = field(default_factory=list)  # (image data, name; "" when it has none)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (what, why)

    def __bool__(self) -> bool:
        return bool(self.paths or self.data or self.refused)


def offline_message(url: str) -> str:
    return f"This is an offline app and won't download {url}: save the image first, then drop the file."


def can_accept(mime: QMimeData) -> bool:
    return mime.hasUrls() or mime.hasImage() or mime.hasText() or any(mime.hasFormat(f) for f in IMAGE_MIME)


def read_mime(mime: QMimeData) -> Dropped:
    """Local files win; then image data (named after the web link it came with); web links alone get the
    offline message; then pasted paths."""
    out = Dropped()
    if mime.hasUrls():
        for url in mime.urls():
            if url.isLocalFile():
                out.paths.append(url.toLocalFile())
            elif url.scheme() in WEB_SCHEMES:
                out.refused.append((url.toString(), offline_message(url.toString())))
    if out.paths:
        out.refused.clear()
        return out
    name = _name_from_links(mime.urls()) if mime.hasUrls() else ""
    for fmt in IMAGE_MIME:
        if mime.hasFormat(fmt):
            data = bytes(mime.data(fmt).data())
            if data:
                return Dropped(data=[(data, name)])
    if mime.hasImage():
        image = mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            return Dropped(data=[(image, name)])
    if out.refused:
        return out
    if mime.hasText():
        lines = [ln.strip() for ln in mime.text().splitlines() if ln.strip()]
        candidates = [ln[7:] if ln.startswith("file://") else ln for ln in lines]
        if candidates and all(os.path.exists(c) for c in candidates):
            return Dropped(paths=candidates)
        urls = [ln for ln in lines if ln.startswith(("http://", "https://"))]
        return Dropped(refused=[(u, offline_message(u)) for u in urls])
    return out


def _name_from_links(urls: list[QUrl]) -> str:
    """A browser dragging an image sends its address too: the image is named after it (``cat.jpg``)."""
    for url in urls:
        name = url.fileName()
        if name:
            return name
    return ""
