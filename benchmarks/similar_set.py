"""A near-duplicate photo set from scikit-image's public-domain photos, for the similarity benchmark.

Each of scikit-image's colour photos is the source of one group of eight versions, as a photo library gathers
them: the original (PNG), recompressed (JPEG quality 40), resized (half size), cropped (a copy for a post),
turned a few degrees (straightened, the corners cut away), brighter, framed off like the next shot of a burst,
and captioned. Its grey photos (camera, coins, moon, ...) appear once each, as RGB: photos with no duplicate;
so do the parts of two colour photos that their groups do not show (the right of the Hubble deep field, the
bottom of the immunohistochemistry slide): photos of the same kind as a group's, sharing no pixel with it.
Every file is written the way it would reach a library (JPEG at quality 90 unless said otherwise).

The set is split in two halves by source photo (``FOLD_A`` and the rest), so a threshold can be chosen on one
half and measured on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

COLOUR = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "motorcycle", "retina",
          "rocket")
GREY = ("brick", "camera", "cell", "clock", "coins", "grass", "gravel", "moon", "page", "text")
# (left, top, right, bottom) fractions: a group's source is this part of the photo, and the rest is a single
PARTS = {"hubble_deep_field": ((0.0, 0.0, 0.55, 1.0), (0.55, 0.0, 1.0, 1.0)),
         "immunohistochemistry": ((0.0, 0.0, 1.0, 0.6), (0.0, 0.6, 1.0, 1.0))}
FOLD_A = {"astronaut", "coffee", "hubble_deep_field", "rocket",  # groups, and singles
          "brick", "cell", "coins", "gravel", "page"}
VERSIONS = ("original", "recompressed", "resized", "cropped", "rotated", "brighter", "burst", "captioned")


@dataclass(frozen=True)
class Photo:
    path: Path
    source: str  # the scikit-image photo it was made from
    version: str  # one of VERSIONS ("original" for a photo with no duplicate)
    group: str | None  # the source, for photos that have near-duplicates; None for the others
    fold: str  # "A" or "B"


def source_image(name: str, part: int = 0) -> Image.Image:
    """The scikit-image photo ``name`` as RGB; for PARTS, its ``part`` (0: the group's, 1: the single's)."""
    from skimage import data

    if name == "motorcycle":
        pixels = data.stereo_motorcycle()[0]  # the left view
    else:
        pixels = getattr(data, name)()
    im = Image.fromarray(np.asarray(pixels)).convert("RGB")
    if name in PARTS:
        left, top, right, bottom = PARTS[name][part]
        im = im.crop((int(left * im.width), int(top * im.height), int(right * im.width), int(bottom * im.height)))
    return im


def _caption(im: Image.Image, text: str) -> Image.Image:
    out = im.copy()
    draw = ImageDraw.Draw(out)
    size = max(12, im.height // 12)
    font = ImageFont.load_default(size=size)
    band = (0, im.height - int(size * 1.6), im.width, im.height)
    draw.rectangle(band, fill=(0, 0, 0))
    draw.text((size // 2, band[1] + size // 4), text, fill=(255, 255, 255), font=font)
    return out


def version(im: Image.Image, kind: str) -> Image.Image:
    """The ``kind`` version of ``im`` (see VERSIONS)."""
    w, h = im.size
    if kind in ("original", "recompressed"):
        return im
    if kind == "resized":
        return im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
    if kind == "cropped":  # a copy cut for a post: 80 % of each side, off centre
        left, top = int(w * 0.15), int(h * 0.05)
        return im.crop((left, top, left + int(w * 0.8), top + int(h * 0.8)))
    if kind == "rotated":  # straightened by 4 degrees, the empty corners cut away
        turned = im.rotate(4, resample=Image.Resampling.BICUBIC, expand=False)
        mx, my = int(w * 0.06), int(h * 0.06)
        return turned.crop((mx, my, w - mx, h - my))
    if kind == "brighter":
        return ImageEnhance.Brightness(im).enhance(1.3)
    if kind == "burst":  # the next frame: the same size of view, moved by 8 % and 4 %
        dx, dy = int(w * 0.08), int(h * 0.04)
        return im.crop((dx, dy, dx + int(w * 0.9), dy + int(h * 0.9))).resize((w, h), Image.Resampling.BICUBIC)
    if kind == "captioned":
        return _caption(im, "Summer 2024 - with love")
    raise ValueError(kind)


def build(folder: Path) -> list[Photo]:
    """Write the set into ``folder`` (made if needed); its photos, in a fixed order."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Photo] = []
    for name in COLOUR:
        src = source_image(name)
        fold = "A" if name in FOLD_A else "B"
        for kind in VERSIONS:
            im = version(src, kind)
            if kind == "original":
                path = folder / f"{name}-{kind}.png"
                im.save(path)
            else:
                path = folder / f"{name}-{kind}.jpg"
                im.save(path, quality=40 if kind == "recompressed" else 90)
            out.append(Photo(path, name, kind, name, fold))
    for name in (*GREY, *PARTS):
        path = folder / f"{name}{'-other-part' if name in PARTS else ''}.jpg"
        source_image(name, part=1).save(path, quality=90)
        out.append(Photo(path, name, "original", None, "A" if name in FOLD_A else "B"))
    return out


def true_pairs(photos: list[Photo]) -> set[tuple[int, int]]:
    """The index pairs (i < j) of photos that are versions of one another."""
    return {(i, j) for i in range(len(photos)) for j in range(i + 1, len(photos))
            if photos[i].group is not None and photos[i].group == photos[j].group}


if __name__ == "__main__":
    import sys
    import tempfile

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="similar-set-"))
    photos = build(where)
    print(f"{len(photos)} photos in {where}, {len(true_pairs(photos))} near-duplicate pairs")
