"""Preprocessing equals the weights' own transforms, shows photos as a viewer does, and maps the crop back."""

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import ResNeXt50_32X4D_Weights
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from resnext_gui.core.errors import ImageError
from resnext_gui.core.paths import expand_paths
from resnext_gui.core.preprocess import Preprocessing, crop_rect, load_and_prepare, load_image, model_input
from resnext_gui.core.weights import VARIANTS
from tests.support.helpers import REPO

V2 = ResNeXt50_32X4D_Weights.IMAGENET1K_V2
V1 = ResNeXt50_32X4D_Weights.IMAGENET1K_V1
SPEC = {V2: VARIANTS["v2"].preprocessing, V1: VARIANTS["v1"].preprocessing}
TOLERANCE = 1e-6  # on the normalised scale, where one 8-bit step is about 0.017


def assert_same_input(got: np.ndarray, expected: torch.Tensor) -> None:
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == tuple(expected.shape)
    assert np.abs(got - expected.numpy()).max() <= TOLERANCE


@pytest.mark.parametrize("weights", [V2, V1], ids=["V2", "V1"])
@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee", "rocket_jpg"])
def test_input_equals_weights_transforms_on_real_photos(photos, name, weights):
    prepared = load_and_prepare(photos[name], SPEC[weights], fast=False)
    with Image.open(photos[name]) as im:
        expected = weights.transforms()(im.convert("RGB"))
    assert prepared.tensor.shape == (3, 224, 224)
    assert_same_input(prepared.tensor, expected)


SIZES = [(1, 1), (2, 3), (5, 300), (300, 5), (17, 17), (223, 224), (224, 224), (231, 233), (232, 232), (233, 232),
         (255, 257), (256, 256), (640, 480), (480, 640), (1001, 999), (1199, 3)]


@pytest.mark.parametrize("weights", [V2, V1], ids=["V2", "V1"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_input_equals_weights_transforms_at_any_size(photos, weights, size):
    """Odd sides, portrait and landscape, sizes around the resize target, photos far smaller than the crop."""
    with Image.open(photos["chelsea"]) as im:
        image = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    assert_same_input(model_input(image, SPEC[weights]), weights.transforms()(image))


@pytest.mark.parametrize("size", [(10, 10), (10, 13), (11, 12), (30, 5)])
@pytest.mark.parametrize("crop", [13, 16])
def test_a_crop_larger_than_the_resized_photo_is_padded_as_torchvision_pads(photos, size, crop):
    """Not the official variants (their crop is smaller than their resize), but the same rule all the same."""
    spec = Preprocessing(8, crop)
    with Image.open(photos["coffee"]) as im:
        image = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    resized = F.center_crop(F.resize(image, [spec.resize], interpolation=InterpolationMode.BILINEAR), [crop])
    expected = F.normalize(F.convert_image_dtype(F.pil_to_tensor(resized), torch.float32), spec.mean, spec.std)
    got = model_input(image, spec)
    assert_same_input(got, expected)
    black = (0 - np.array(spec.mean)) / np.array(spec.std)
    assert np.allclose(got[:, 0, 0], black)  # the resized photo is 8 high: the top row is padding


def test_other_modes_are_taken_as_rgb(photos):
    with Image.open(photos["coffee"]) as im:
        grey = im.convert("L")
    assert_same_input(model_input(grey, SPEC[V2]), V2.transforms()(grey.convert("RGB")))


def test_exif_orientation_is_applied(tmp_path):
    shown = np.zeros((40, 60, 3), np.uint8)  # what a viewer should show: 60 wide, 40 high
    shown[:, :30] = (255, 0, 0)
    shown[:20, 30:] = (0, 0, 255)
    stored = Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90)  # the camera's sensor order
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=100, exif=exif)
    decoded = load_image(path)
    assert decoded.original_size == (60, 40) and decoded.image.size == (60, 40)
    assert np.abs(np.asarray(decoded.image, np.int16) - shown).mean() < 4


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    got = np.asarray(load_image(path).image)[0, :, 0]
    assert got.tolist() == [0, 1, 128, 255]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("P", (30, 20), 3),
        lambda: Image.new("LA", (30, 20), (128, 0)),
        lambda: Image.new("RGBA", (30, 20), (10, 20, 30, 0)),
        lambda: Image.new("1", (30, 20), 1),
        lambda: Image.new("CMYK", (30, 20), (0, 255, 255, 0)),
    ],
    ids=["palette", "LA", "RGBA", "1-bit", "CMYK"],
)
def test_any_mode_becomes_rgb(tmp_path, make):
    im = make()
    path = tmp_path / ("x.jpg" if im.mode == "CMYK" else "x.png")
    im.save(path)
    decoded = load_image(path)
    assert decoded.image.mode == "RGB" and decoded.image.size == (30, 20)


def test_transparency_is_shown_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert np.asarray(load_image(path).image).min() == 255


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    r, g, b = np.asarray(load_image(path).image)[8, 8]
    assert r > 200 and g < 50


def test_large_jpeg_decodes_reduced_but_at_least_twice_the_target(big_jpeg):
    fast = load_and_prepare(big_jpeg, SPEC[V2], fast=True)
    full = load_and_prepare(big_jpeg, SPEC[V2], fast=False)
    assert full.decoded.image.size == (4000, 3000)
    assert 2 * 232 <= min(fast.decoded.image.size) < 3000
    assert fast.decoded.original_size == full.decoded.original_size == (4000, 3000)
    assert fast.crop == pytest.approx(full.crop, abs=1e-6)
    # the model input barely changes (on the normalised scale, where one 8-bit step is ~0.017)
    assert np.abs(fast.tensor - full.tensor).mean() < 0.02


def _png_header_only(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(40000, 40000))
    with pytest.raises(ImageError, match="too large.*1,600,000,000 pixels.*decompression bomb"):
        load_image(path)


def test_crop_rect_matches_torchvision_resize_and_center_crop():
    # A coordinate image: channel 0 holds x, channel 1 holds y. After torchvision's own resize (nearest)
    # and centre crop, the crop's corner pixels name the original pixels the rectangle must cover.
    for w, h in [(640, 480), (300, 900), (1000, 1000), (233, 5000)]:
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        coords = torch.stack([xs, ys])
        out = F.center_crop(F.resize(coords, [232], interpolation=InterpolationMode.NEAREST), [224])
        left, top, right, bottom = crop_rect((w, h), 232, 224)
        sx, sy = (right - left) / 224, (bottom - top) / 224
        assert abs(out[0, 0, 0].item() - left) <= sx + 1
        assert abs(out[1, 0, 0].item() - top) <= sy + 1
        assert abs(out[0, -1, -1].item() + 1 - right) <= sx + 1
        assert abs(out[1, -1, -1].item() + 1 - bottom) <= sy + 1


def test_expand_paths_recurses_sorted_and_keeps_named_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for rel in ["a/z.jpg", "a/b/y.PNG", "a/notes.txt", "a/m.webp"]:
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "a" / "b" / "loop").symlink_to(tmp_path / "a")
    got = expand_paths([tmp_path / "a", tmp_path / "a" / "notes.txt"])
    names = [p.relative_to(tmp_path).as_posix() for p in got]
    assert names == ["a/b/y.PNG", "a/m.webp", "a/z.jpg", "a/notes.txt"]


# ---- decoding within a memory budget ----

def _png(path, width, height, color_type, depth, pixel: bytes):
    """A PNG of one colour, written a row at a time (its pixels never held here): 343 kB for 9400x9400 RGBA."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    squeeze, row, idat = zlib.compressobj(9), b"\x00" + pixel * width, bytearray()
    for _ in range(height):
        idat += squeeze.compress(row)
    idat += squeeze.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0,
                                                                       0, 0))
                     + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b""))
    return path


# A lossless 9400x9400 RGBA WebP of one colour, 38 bytes, as Pillow 13 writes it (lossless=True, quality=0, method=0)
WEBP_9400 = bytes.fromhex("524946461e000000574542505650384c110000002fb7e42d190750b22257a6808188e87f0000")

PEAK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from resnext_gui.core.errors import ImageError
from resnext_gui.core.preprocess import Preprocessing, load_and_prepare, load_image

def kib(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field))

base, said = kib("VmRSS:"), []
for decode in (lambda p: load_and_prepare(p, Preprocessing(232, 224)).decoded, load_image):  # classify, the view
    try:
        decoded = decode(sys.argv[2])
        said.append(list(decoded.image.size))
        del decoded
    except ImageError as exc:
        said.append(str(exc))
print(json.dumps({"above_baseline_mb": (kib("VmHWM:") - base) / 1024, "said": said}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak from /proc (Linux)")
@pytest.mark.parametrize("kind", ["RGBA PNG", "16-bit PNG", "lossless WebP"])
def test_a_huge_small_photo_decodes_within_the_memory_budget(tmp_path, kind):
    """9400x9400 pixels (under Pillow's 89.5-megapixel limit) in a few hundred kB: decoded for the model and in
    full for the view, the process stays within about 1 GB of where it started (it peaked at 2.1 GB for the PNG,
    1.6 GB for the 16-bit PNG and 2.4 GB for the WebP), or the photo is refused by name."""
    if kind == "RGBA PNG":
        path = _png(tmp_path / "huge.png", 9400, 9400, 6, 8, bytes([200, 100, 50, 128]))
    elif kind == "16-bit PNG":
        path = _png(tmp_path / "huge.png", 9400, 9400, 0, 16, b"\x80\x00")
    else:
        path = tmp_path / "huge.webp"
        path.write_bytes(WEBP_9400)
    with Image.open(path) as im:
        assert im.size == (9400, 9400) and path.stat().st_size < 400_000
    r = subprocess.run([sys.executable, "-c", PEAK, str(REPO), str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["above_baseline_mb"] < 1024, got
    for said in got["said"]:
        assert said == [9400, 9400] or ("too large to decode within the app's memory budget" in said
                                        and "9400x9400" in said and str(path) in said), said
    if kind != "lossless WebP":
        assert got["said"] == [[9400, 9400]] * 2  # decoded, not refused


def _whole_photo_rgb(im):
    """The conversion as it was done on the whole photo at once (the reference for the strip-wise one)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.float32)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32))
        peak = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)).convert("RGB")
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _modes():
    rng = np.random.default_rng(0)
    size = (37, 23)
    out = {
        "RGBA": Image.fromarray(rng.integers(0, 256, (23, 37, 4), dtype=np.uint8)),
        "LA": Image.fromarray(rng.integers(0, 256, (23, 37, 2), dtype=np.uint8)),
        "I;16": Image.fromarray(rng.integers(0, 65536, (23, 37), dtype=np.uint16)),
        "I above 255": Image.fromarray(rng.integers(0, 40000, (23, 37), dtype=np.int32)),
        "I up to 255": Image.fromarray(rng.integers(0, 256, (23, 37), dtype=np.int32)),
    }
    floats = rng.random((23, 37), dtype=np.float32)
    floats[22, 36] = np.nan  # in the last strip
    out["F up to 1"] = Image.fromarray(floats)
    wide = floats * 300
    wide[0, 0] = np.inf
    out["F above 1"] = Image.fromarray(wide)
    palette = Image.fromarray(rng.integers(0, 8, (23, 37), dtype=np.uint8), "P")
    palette.putpalette(list(rng.integers(0, 256, 768, dtype=np.uint8)))
    palette.info["transparency"] = 3
    out["P with transparency"] = palette
    assert all(im.size == size for im in out.values())
    return out


@pytest.mark.parametrize("name", sorted(_modes()))
def test_conversions_strip_by_strip_equal_the_whole_photos(monkeypatch, name):
    from resnext_gui.core import preprocess

    im = _modes()[name]
    monkeypatch.setattr(preprocess, "STRIP_PIXELS", 37 * 4)  # strips of 4 rows, the last one shorter
    got = preprocess._to_rgb(im)
    assert got.mode == "RGB" and got.size == im.size
    assert np.array_equal(np.asarray(got), np.asarray(_whole_photo_rgb(im)))
