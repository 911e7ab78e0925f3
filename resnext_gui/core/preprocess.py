"""File or bytes -> the photo as a viewer shows it (oriented RGB) -> the model's input array and crop rectangle."""

from __future__ import annotations

import io
import os
import re
import stat
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError
from .similarity import dhash

Source = str | os.PathLike[str] | bytes


@dataclass
class Decoded:
    """An oriented RGB photo, possibly decoded at reduced size, and the size of the full photo."""

    image: Image.Image | None  # mode RGB, EXIF orientation applied; None once let go (only the tensor was needed)
    original_size: tuple[int, int]  # (width, height) of the oriented photo at full resolution
    name: str

    def pixels(self) -> Image.Image:
        if self.image is None:
            raise ValueError(f"{self.name}: the decoded photo was not kept")
        return self.image

    @property
    def scale(self) -> tuple[float, float]:
        """Full-resolution pixels per decoded pixel, (x, y); 1.0 unless decoded at reduced size."""
        image = self.pixels()
        return (self.original_size[0] / image.width, self.original_size[1] / image.height)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the network's input: torchvision's ``ImageClassification`` preset.

    The shorter side is scaled to ``resize`` (bilinear, antialiased), the centre ``crop`` x ``crop`` square
    is cut out, and the 8-bit values are scaled to [0, 1] and normalised by ``mean`` and ``std``.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass
class Prepared:
    """A model-ready array plus what the heatmap needs to land on the right pixels."""

    tensor: np.ndarray  # (3, crop, crop) float32, normalised
    crop: tuple[float, float, float, float]  # (left, top, right, bottom) in full-resolution photo pixels
    decoded: Decoded
    decode_ms: float
    dhash: int | None = None  # the photo's 64-bit difference hash (core.similarity.dhash), from the same decode


def _describe_unreadable(data_head: bytes) -> str:
    if len(data_head) >= 12 and data_head[4:8] == b"ftyp" and data_head[8:12] in (b"heic", b"heix", b"mif1", b"heif"):
        return "a HEIC/HEIF photo, which this app cannot read: convert it to JPEG or PNG first"
    if data_head[:5] in (b"<?xml", b"<svg ") or b"<svg" in data_head[:256]:
        return "an SVG drawing, not a photo: export it as PNG first"
    return "not an image this app can read (JPEG, PNG, BMP, GIF, WebP, TIFF)"


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a plain file"


MAX_ASPECT = 400  # longer side / shorter side; see check_aspect


def check_aspect(size: tuple[int, int], name: str) -> None:
    """Refuse photos so long and thin that preparing them would need gigabytes.

    The model's preprocessing scales the *shorter* side to the resize target (232 px), so a 1x20000 PNG
    (165 bytes on disk) would become 232 x 4.6 million pixels: over 12 GB as floats. Up to 400:1 (a 3x900
    sliver, a wide panorama strip) the resized image stays under about 0.3 GB; beyond it the photo is
    refused before any pixel is decoded.
    """
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name} has no pixels ({w}x{h})")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(
            f"{name} is {w}x{h} pixels, more than {MAX_ASPECT} times longer than wide: refused, because "
            "scaling it for the model would take gigabytes of memory (like a decompression bomb)"
        )


def _open(source: Source) -> tuple[Image.Image, str]:
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("the image data is empty")
        return Image.open(io.BytesIO(source)), source_name(source)
    path = Path(source)
    name = str(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(f"{name} is a folder, not an image")
        if not stat.S_ISREG(st.st_mode):  # a FIFO, a device like /dev/zero, a socket: never opened
            raise ImageError(f"{name} is not a regular file ({_file_kind(st.st_mode)}), not a photo")
        if st.st_size == 0:
            raise ImageError(f"{name} is empty (0 bytes)")
        return Image.open(path), name
    except FileNotFoundError:
        raise ImageError(f"{name} does not exist (was it moved or deleted?)") from None
    except PermissionError:
        raise ImageError(f"{name} cannot be read: permission denied") from None
    except UnidentifiedImageError:
        with open(path, "rb") as fh:
            head = fh.read(512)
        raise ImageError(f"{name} is {_describe_unreadable(head)}") from None


# Decoding is held to a memory budget: what one photo may take at once, whatever it is (a 343 kB PNG can hold
# 88 million pixels). Pillow keeps RGB, RGBA, CMYK, 32-bit and float pixels in 4 bytes, 16-bit in 2, the rest in 1.
DECODE_BUDGET_BYTES = 768 * 2**20
STRIP_PIXELS = 1 << 20  # conversions that need working copies (transparency, 16-bit, float) go a strip at a time
# What a format's decoder holds at its peak, in multiples of the decoded pixels: libwebp keeps its canvas and the
# previous frame's, and hands over a copy that Pillow copies again (measured: 2.36 GB for 88 megapixels);
# libtiff may decode a whole strip before Pillow copies it. The others decode straight into the image.
_DECODER_COPIES = {"WEBP": 5.0, "JPEG": 1.0, "MPO": 1.0, "PNG": 1.0, "GIF": 1.0, "BMP": 1.0, "DIB": 1.0}
_OTHER_DECODER_COPIES = 2.0
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # EXIF orientation -> what shows the photo upright (as ImageOps does)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def _pixel_bytes(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode in _SIXTEEN_BIT else 4


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA or (im.mode == "P" and "transparency" in im.info)


def decode_need(im: Image.Image, orientation: object = 1) -> int:
    """The most memory decoding ``im`` (opened, not loaded, after any draft) to an upright RGB photo holds at once,
    in bytes: the decoder's peak, or the decoded pixels beside their RGB copy, or the RGB photo beside its turned copy."""
    pixels = im.width * im.height
    decoded = _pixel_bytes(im.mode) * pixels
    rgb = 0 if im.mode == "RGB" else 4 * pixels
    strip = 16 * STRIP_PIXELS if im.mode in _SIXTEEN_BIT + ("I", "F") or _has_alpha(im) else 0
    need = max(_DECODER_COPIES.get(str(im.format), _OTHER_DECODER_COPIES) * decoded, decoded + rgb + strip)
    if orientation in _TRANSPOSE:
        need = max(need, 8 * pixels)
    return int(need)


def _strips(im: Image.Image, convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """``convert`` (to RGB) applied a strip of rows at a time: the working copies are a strip's, not the photo's."""
    out = Image.new("RGB", im.size)
    rows = max(1, STRIP_PIXELS // max(1, im.width))
    for top in range(0, im.height, rows):
        box = (0, top, im.width, min(im.height, top + rows))
        out.paste(convert(im.crop(box)), box[:2])
    return out


def _strip_max(im: Image.Image, nan_to_zero: bool = False) -> float:
    rows = max(1, STRIP_PIXELS // max(1, im.width))
    peak = 0.0
    for top in range(0, im.height, rows):
        arr = np.asarray(im.crop((0, top, im.width, min(im.height, top + rows))), dtype=np.float32)
        peak = max(peak, float((np.nan_to_num(arr) if nan_to_zero else arr).max(initial=0)))
    return peak


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit scaled (not clipped), transparency composited on white. Conversions
    that need working copies go strip by strip, with the same arithmetic as on the whole photo."""
    if im.mode == "RGB":
        return im
    if im.mode in _SIXTEEN_BIT + ("I",):
        peak = 65535.0 if im.mode in _SIXTEEN_BIT or _strip_max(im) > 255 else 255.0

        def scaled(strip: Image.Image) -> Image.Image:
            arr = np.asarray(strip).astype(np.float32)
            arr = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
            return Image.fromarray(arr).convert("RGB")

        return _strips(im, scaled)
    if im.mode == "F":
        unit = 1.0 if _strip_max(im, nan_to_zero=True) <= 1.0 else 255.0

        def floats(strip: Image.Image) -> Image.Image:
            arr = np.nan_to_num(np.asarray(strip, dtype=np.float32))
            arr = np.clip(np.rint(arr * (255.0 / unit)), 0, 255).astype(np.uint8)
            return Image.fromarray(arr).convert("RGB")

        return _strips(im, floats)
    if _has_alpha(im):

        def on_white(strip: Image.Image) -> Image.Image:
            rgba = strip.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")

        return _strips(im, on_white)
    return im.convert("RGB")


def load_image(source: Source, min_side: int | None = None) -> Decoded:
    """Decode a photo as a viewer shows it: first frame, EXIF orientation applied, RGB.

    ``min_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 size (Pillow's ``draft``, DCT scaling) as long
    as its shorter side stays at least ``min_side`` pixels. Decoding holds at most DECODE_BUDGET_BYTES at once
    (``decode_need``); a photo that would need more is refused before its pixels are decoded. Every failure is
    an ImageError with a specific message; no other exception escapes.
    """
    im = opened = None
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its pixel limit and raises above; refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened, name = _open(source)
            im = opened
            full_w, full_h = im.size
            check_aspect((full_w, full_h), name)
            if min_side and im.format == "JPEG" and min(full_w, full_h) > 2 * min_side:
                factor = min_side / min(full_w, full_h)
                im.draft(im.mode, (max(1, int(full_w * factor + 0.999)), max(1, int(full_h * factor + 0.999))))
            orientation = im.getexif().get(0x0112, 1)
            need = decode_need(im, orientation)
            if need > DECODE_BUDGET_BYTES:
                raise ImageError(
                    f"{name} is too large to decode within the app's memory budget: {im.width}x{im.height} pixels "
                    f"({im.format or 'image'}, {im.mode}) would need about {need / 2**20:,.0f} MB at once, over the "
                    f"limit of {DECODE_BUDGET_BYTES / 2**20:,.0f} MB")
            im.load()
            rgb = _to_rgb(im)
            if rgb is opened and (getattr(opened, "is_animated", False) or opened.format == "WEBP"):
                rgb = rgb.copy()  # the pixels without the decoder (animated files keep theirs open for other frames)
            if rgb is not opened:
                opened.close()  # the decoded pixels go now, before any turn needs room
            opened = None
            turn = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
            if turn is not None:
                upright = rgb.transpose(turn)
                rgb.close()
                rgb = upright
        if orientation in (5, 6, 7, 8):
            full_w, full_h = full_h, full_w
        return Decoded(rgb, (full_w, full_h), name)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(
            f"{source_name(source)} is too large to open safely: {pixels}, over the limit of "
            f"{Image.MAX_IMAGE_PIXELS:,} (refused as a possible decompression bomb)"
        ) from None
    except MemoryError:
        raise ImageError(f"{source_name(source)} is too large to decode in the available memory") from None
    except OSError as exc:
        msg = str(exc) or type(exc).__name__
        if any(w in msg.lower() for w in ("truncated", "broken", "eof", "unrecognized data stream")):
            raise ImageError(f"{source_name(source)} is truncated or damaged ({msg})") from None
        raise ImageError(f"{source_name(source)} cannot be decoded ({msg})") from None
    except Exception as exc:  # Pillow's plugins raise SyntaxError, ValueError, struct.error, ... on bad data
        raise ImageError(f"{source_name(source)} is damaged or not a valid image ({type(exc).__name__}: {exc})") from None
    finally:
        if opened is not None:
            opened.close()


def source_name(source: Source) -> str:
    """How a photo is named in results and messages: its path, or "pasted image" for raw bytes."""
    return "pasted image" if isinstance(source, (bytes, bytearray)) else str(source)


def resized_size(size: tuple[int, int], resize: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``resize``, the longer one rounded down as torchvision does."""
    w, h = size
    if w <= h:
        return resize, int(resize * h / w)
    return int(resize * w / h), resize


def _crop_origin(size: tuple[int, int], crop: int) -> tuple[int, int]:
    """(left, top) of torchvision's ``center_crop``; negative where the image is smaller than the crop.

    torchvision first pads a too-small side with zeros, ``(crop - side) // 2`` before it, then crops at 0;
    otherwise the offset is ``round((side - crop) / 2)`` (Python's round, halves to even).
    """

    def origin(side: int) -> int:
        return -((crop - side) // 2) if crop > side else int(round((side - crop) / 2.0))

    return origin(size[0]), origin(size[1])


def crop_rect(size: tuple[int, int], resize: int, crop: int) -> tuple[float, float, float, float]:
    """The centre crop's rectangle in the coordinates of an image of ``size``.

    Mirrors torchvision's ``resize(shorter side = resize)`` then ``center_crop(crop)``: the crop is taken
    from the resized image and mapped back, so a heatmap drawn in this rectangle covers the pixels the
    model saw.
    """
    w, h = size
    new_w, new_h = resized_size(size, resize)
    left, top = _crop_origin((new_w, new_h), crop)
    sx, sy = w / new_w, h / new_h
    return (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)


def model_input(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """(3, crop, crop) float32: exactly what torchvision's ``weights.transforms()`` makes of this RGB image.

    For a PIL image torchvision resizes with Pillow itself (bilinear, which Pillow always antialiases),
    crops with Pillow (zeros outside the image), divides by 255 and normalises in float32: the same steps,
    in the same order and precision, give the same numbers.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    target = resized_size(image.size, spec.resize)
    if target != image.size:
        image = image.resize(target, Image.Resampling.BILINEAR)
    left, top = _crop_origin(image.size, spec.crop)
    if (left, top, image.width, image.height) != (0, 0, spec.crop, spec.crop):
        image = image.crop((left, top, left + spec.crop, top + spec.crop))
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((pixels - mean) / std, dtype=np.float32)


def prepare(decoded: Decoded, spec: Preprocessing) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The model input (exactly torchvision's ``weights.transforms()(image)``) and the crop in full-resolution coordinates."""
    image = decoded.pixels()
    tensor = model_input(image, spec)
    left, top, right, bottom = crop_rect(image.size, spec.resize, spec.crop)
    sx, sy = decoded.scale
    return tensor, (left * sx, top * sy, right * sx, bottom * sy)


def load_and_prepare(source: Source, spec: Preprocessing, fast: bool = True) -> Prepared:
    """Decode and prepare one photo; ``fast`` lets large JPEGs decode at reduced size (>= 2x ``spec.resize``).
    The photo's dHash is taken from the same decoded picture, before anyone lets it go."""
    start = time.perf_counter()
    decoded = load_image(source, min_side=2 * spec.resize if fast else None)
    tensor, rect = prepare(decoded, spec)
    digest = dhash(decoded.pixels())
    return Prepared(tensor, rect, decoded, (time.perf_counter() - start) * 1000.0, digest)
